package datasets_test

import (
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/dagmm/dagmm/datasets"
)

// Record vectors to files of at most 4 rows, then join the files into one
// training set.
func ExampleRollingWriter() {
	dir, err := os.MkdirTemp("", "rolling-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	w, err := datasets.NewRollingWriter(datasets.RollingConfig{
		Dir:      dir,
		Prefix:   "telegraf",
		Features: []string{"cpu_usage", "mem_usage"},
		MaxRows:  4,
	})
	if err != nil {
		log.Fatal(err)
	}
	t0 := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	for i := range 10 {
		if err := w.Write(t0.Add(time.Duration(i)*10*time.Second), "web-1", []float64{float64(10 + i), 50}); err != nil {
			log.Fatal(err)
		}
	}
	if err := w.Close(); err != nil { // completes the last file
		log.Fatal(err)
	}

	var tables []*datasets.Table
	for _, path := range w.Files() {
		tab, err := datasets.ReadFile(path)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%s...: %d rows\n", filepath.Base(path)[:9], tab.Len())
		tables = append(tables, tab)
	}
	all, err := datasets.Concat(tables...)
	if err != nil {
		log.Fatal(err)
	}
	cpu, _ := all.Column("cpu_usage")
	fmt.Println(all.Names(), all.Len(), cpu.Floats[9])
	// Output:
	// telegraf-...: 4 rows
	// telegraf-...: 4 rows
	// telegraf-...: 2 rows
	// [timestamp host cpu_usage mem_usage] 10 19
}
