package datasets

import (
	"bytes"
	"encoding/binary"
	"errors"
	"runtime"
	"strings"
	"testing"

	"github.com/parquet-go/parquet-go"
)

func TestThriftScan(t *testing.T) {
	uv := func(v uint64) []byte { return binary.AppendUvarint(nil, v) }
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	deep := bytes.Repeat([]byte{0x1c}, 70) // struct field in struct field ...
	tests := []struct {
		name     string
		in       []byte
		header   bool
		pageSize int64
		err      string // "" for valid; "short" for errShort
	}{
		{"empty struct", []byte{0}, false, 0, ""},
		{
			"every type",
			cat(
				[]byte{0x11},        // field 1 bool true
				[]byte{0x13, 7},     // field 2 byte
				[]byte{0x14}, uv(3), // field 3 i16
				[]byte{0x15}, uv(4), // field 4 i32
				[]byte{0x16}, uv(1<<40), // field 5 i64
				[]byte{0x17}, make([]byte, 8), // field 6 double
				[]byte{0x18}, uv(3), []byte("abc"), // field 7 binary
				[]byte{0x19, 0x35}, uv(1), uv(2), uv(3), // field 8 list of 3 i32
				[]byte{0x19, 0x21, 1, 0},                        // field 9 list of 2 bools
				[]byte{0x1a, 0x1c, 0x15, 2, 0},                  // field 10 set of 1 struct
				[]byte{0x1b}, uv(1), []byte{0x55}, uv(1), uv(2), // field 11 map<i32,i32>
				[]byte{0x1b}, uv(0), // field 12 empty map
				[]byte{0x0c}, uv(40), []byte{0}, // field 20 (long form), empty struct
				[]byte{0},
			), false, 0, "",
		},
		{"page size", cat([]byte{0x15}, uv(0), []byte{0x15}, uv(200), []byte{0x15}, uv(2*77), []byte{0}), true, 77, ""},
		{"page size absent", []byte{0x15, 0, 0}, true, -1, ""},
		{"binary longer than the data", cat([]byte{0x18}, uv(1<<30), []byte("abc")), false, 0, "short"},
		{"list longer than the data", cat([]byte{0x19, 0xf5}, uv(1<<31), []byte{1, 2}), false, 0, "short"},
		{"map longer than the data", cat([]byte{0x1b}, uv(1<<40), []byte{0x55, 1, 2}), false, 0, "short"},
		{"no stop", []byte{0x15, 2}, false, 0, "short"},
		{"cut varint", []byte{0x15, 0x80}, false, 0, "short"},
		{"varint overflow", cat([]byte{0x16}, bytes.Repeat([]byte{0xff}, 11)), false, 0, "varint overflows"},
		{"unknown type", []byte{0x1e, 0}, false, 0, "unknown thrift type 14"},
		{"deep", cat(deep, bytes.Repeat([]byte{0}, 71)), false, 0, "nested too deep"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := thriftScan{b: tt.in}
			err := s.structure(tt.header)
			switch tt.err {
			case "":
				if err != nil {
					t.Fatalf("error %v", err)
				}
				if s.pos != len(tt.in) {
					t.Errorf("stopped at %d of %d bytes", s.pos, len(tt.in))
				}
				if tt.header && s.pageSize != tt.pageSize {
					t.Errorf("page size %d, want %d", s.pageSize, tt.pageSize)
				}
			case "short":
				if !errors.Is(err, errShort) {
					t.Fatalf("error %v, want errShort", err)
				}
			default:
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want %q", err, tt.err)
				}
			}
		})
	}
}

// TestReadParquetCorruptPageHeader: a page header that claims a 1 GB string
// fails fast, without parquet-go allocating the gigabyte.
func TestReadParquetCorruptPageHeader(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteParquet(&buf, sampleTable(t)); err != nil {
		t.Fatal(err)
	}
	data := buf.Bytes()
	f, err := parquet.OpenFile(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	md := f.Metadata().RowGroups[0].Columns[2].MetaData // cpu_usage
	at := md.DataPageOffset
	bad := binary.AppendUvarint([]byte{0x15, 0, 0x18}, 1<<30)
	copy(data[at:], bad)

	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err = ReadParquet(bytes.NewReader(data), int64(len(data)))
	runtime.ReadMemStats(&after)
	if err == nil || !strings.Contains(err.Error(), `column "cpu_usage": row group 0: malformed parquet page header`) {
		t.Fatalf("error %v, want a malformed page header in cpu_usage", err)
	}
	if got := after.TotalAlloc - before.TotalAlloc; got > 64<<20 {
		t.Errorf("allocated %d MB reading a corrupt file", got>>20)
	}
}
