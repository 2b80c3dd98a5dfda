package datasets

import (
	"bytes"
	"io"
	"testing"
)

// benchTable is a generated table of 100,000 rows.
func benchTable(b *testing.B) *Table {
	b.Helper()
	tab, err := Generate(GenConfig{N: 100_000, Anomalies: 100, Seed: 1})
	if err != nil {
		b.Fatal(err)
	}
	return tab
}

func reportRows(b *testing.B, rows int) {
	b.ReportMetric(float64(b.N*rows)/b.Elapsed().Seconds(), "rows/s")
}

func BenchmarkGenerate(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Generate(GenConfig{N: 100_000, Anomalies: 100, Seed: 1}); err != nil {
			b.Fatal(err)
		}
	}
	reportRows(b, 100_000)
}

func BenchmarkWriteParquet(b *testing.B) {
	tab := benchTable(b)
	b.ReportAllocs()
	for b.Loop() {
		if err := WriteParquet(io.Discard, tab); err != nil {
			b.Fatal(err)
		}
	}
	reportRows(b, tab.Len())
}

func BenchmarkReadParquet(b *testing.B) {
	tab := benchTable(b)
	var buf bytes.Buffer
	if err := WriteParquet(&buf, tab); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(buf.Len()))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ReadParquet(bytes.NewReader(buf.Bytes()), int64(buf.Len())); err != nil {
			b.Fatal(err)
		}
	}
	reportRows(b, tab.Len())
}

func BenchmarkWriteCSV(b *testing.B) {
	tab := benchTable(b)
	b.ReportAllocs()
	for b.Loop() {
		if err := WriteCSV(io.Discard, tab); err != nil {
			b.Fatal(err)
		}
	}
	reportRows(b, tab.Len())
}

func BenchmarkReadCSV(b *testing.B) {
	tab := benchTable(b)
	var buf bytes.Buffer
	if err := WriteCSV(&buf, tab); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(buf.Len()))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ReadCSV(bytes.NewReader(buf.Bytes())); err != nil {
			b.Fatal(err)
		}
	}
	reportRows(b, tab.Len())
}
