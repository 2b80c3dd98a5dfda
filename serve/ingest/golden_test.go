package ingest

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// TestDecodeGolden decodes every message of the captures and compares the
// measurements with testdata/*.golden (one JSON line per metric); run with
// -update to rewrite them after a deliberate change.
func TestDecodeGolden(t *testing.T) {
	for _, file := range []string{"telegraf-1.37-influx.txt", "telegraf-1.37-json.txt", "telegraf-1.37-json-batch.txt"} {
		t.Run(file, func(t *testing.T) {
			d := NewTelegrafDecoder()
			var out bytes.Buffer
			for i, msg := range readLines(t, filepath.Join("testdata", file)) {
				ms, err := d.Decode(nil, msg, FormatAuto)
				if err != nil {
					t.Fatalf("message %d: %v", i+1, err)
				}
				for _, m := range ms {
					line, err := json.Marshal(struct {
						Name   string
						Tags   []Tag
						Fields []Field
						Time   string
					}{m.Name, m.Tags, m.Fields, m.Time.Format(time.RFC3339Nano)})
					if err != nil {
						t.Fatal(err)
					}
					out.Write(line)
					out.WriteByte('\n')
				}
			}
			golden := filepath.Join("testdata", strings.TrimSuffix(file, ".txt")+".golden")
			if *update {
				if err := os.WriteFile(golden, out.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update to write it)", err)
			}
			if !bytes.Equal(out.Bytes(), want) {
				got := strings.Split(out.String(), "\n")
				for i, w := range strings.Split(string(want), "\n") {
					if i >= len(got) || got[i] != w {
						t.Fatalf("%s line %d:\n got %s\nwant %s", golden, i+1, got[min(i, len(got)-1)], w)
					}
				}
				t.Fatalf("%s: %d lines, want fewer", golden, len(got))
			}
		})
	}
}
