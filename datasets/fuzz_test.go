package datasets

import (
	"bytes"
	"testing"
)

// FuzzReadCSV checks that ReadCSV never panics, and that whatever it reads
// it writes back as CSV that reads as the same table.
func FuzzReadCSV(f *testing.F) {
	seeds := []string{
		"",
		"a\n",
		"a\n1\n",
		"a,b\n1,x\n2,y\n",
		"timestamp,host,cpu\n2026-11-24T00:00:00Z,web-1,1.5\n2026-11-24T00:01:00+02:00,web-2,NaN\n",
		"a,b\n\"\",\"q\"\"uote\"\n,\n",
		"e\ntrue\nFALSE\n",
		"x\n1e999\n-0\n0x1p-2\n",
		"\ufeffa\n\" lead\"\n",
		"a,a\n1,2\n",
		"a\n\"\r\"\n",
		"n\n1\nabc\n2\n",
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	var buf bytes.Buffer
	if err := WriteCSV(&buf, sampleTableNoNulls(f)); err != nil {
		f.Fatal(err)
	}
	f.Add(buf.Bytes())
	f.Fuzz(func(t *testing.T, data []byte) {
		tab, err := ReadCSV(bytes.NewReader(data))
		if err != nil {
			return
		}
		var out bytes.Buffer
		if err := WriteCSV(&out, tab); err != nil {
			t.Fatalf("WriteCSV: %v", err)
		}
		again, err := ReadCSV(bytes.NewReader(out.Bytes()))
		if err != nil {
			t.Fatalf("reading back what WriteCSV wrote: %v\ninput: %q\nwritten: %q", err, data, out.Bytes())
		}
		assertEqualTables(t, again, tab)
	})
}

// FuzzReadParquet checks that ReadParquet never panics on any bytes.
func FuzzReadParquet(f *testing.F) {
	gen, err := Generate(GenConfig{N: 50, Anomalies: 2, Seed: 1})
	if err != nil {
		f.Fatal(err)
	}
	for _, tab := range []*Table{gen, sampleTable(f)} {
		var buf bytes.Buffer
		if err := WriteParquet(&buf, tab); err != nil {
			f.Fatal(err)
		}
		f.Add(buf.Bytes())
	}
	f.Add([]byte("PAR1"))
	f.Add([]byte("PAR1\x00\x00\x00\x00PAR1"))
	f.Fuzz(func(t *testing.T, data []byte) {
		tab, err := ReadParquet(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			return
		}
		// Whatever reads must write.
		var out bytes.Buffer
		if err := WriteParquet(&out, tab); err != nil {
			t.Fatalf("WriteParquet: %v", err)
		}
	})
}

// sampleTableNoNulls is sampleTable without the columns that have nulls,
// which CSV cannot hold.
func sampleTableNoNulls(tb testing.TB) *Table {
	tb.Helper()
	tab := sampleTable(tb)
	tab.Remove("net_in_bps")
	tab.Remove("note")
	return tab
}
