package datasets_test

import (
	"fmt"
	"log"
	"os"
	"path/filepath"
	"strings"

	"github.com/dagmm/dagmm/datasets"
)

// Generate the seed experiment's data, write it, read it back, and build the
// training matrix from the rows the monitoring did not flag.
func Example() {
	dir, err := os.MkdirTemp("", "datasets-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	tab, err := datasets.Generate(datasets.DefaultGenConfig())
	if err != nil {
		log.Fatal(err)
	}
	path := filepath.Join(dir, "metrics.parquet")
	if err := datasets.WriteFile(path, tab); err != nil {
		log.Fatal(err)
	}

	tab, err = datasets.ReadFile(path)
	if err != nil {
		log.Fatal(err)
	}
	// Pretend the monitoring raised events on the labelled rows.
	label, _ := tab.Column("label")
	event := make([]bool, tab.Len())
	for i := range event {
		event[i] = label.Ints[i] == 1
	}
	if err := tab.AddBools(datasets.DefaultEventColumn, event); err != nil {
		log.Fatal(err)
	}
	kept, removed, err := datasets.RemoveEvents(tab, datasets.DefaultEventColumn)
	if err != nil {
		log.Fatal(err)
	}
	features, err := datasets.SelectFeatures(kept, nil, datasets.DefaultExclude())
	if err != nil {
		log.Fatal(err)
	}
	x, err := datasets.Matrix(kept, features)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("columns:", strings.Join(tab.Names(), ", "))
	fmt.Printf("rows used %d, removed %d\n", kept.Len(), removed)
	fmt.Println("features:", features)
	fmt.Println("matrix:", len(x)/len(features), "×", len(features))
	// Output:
	// columns: timestamp, host, cpu_usage, mem_usage, disk_busy, net_in_bps, label, cause, event
	// rows used 998, removed 2
	// features: [cpu_usage mem_usage disk_busy net_in_bps]
	// matrix: 998 × 4
}

// A bad value in a numeric CSV column is reported with its row and column.
func ExampleReadCSV() {
	in := "host,cpu_usage\nweb-1,12.5\nweb-1,abc\n"
	_, err := datasets.ReadCSV(strings.NewReader(in))
	fmt.Println(err)
	// Output:
	// datasets: row 2, column "cpu_usage": "abc" is not a number
}

// Append the scorer's columns and write the rows back.
func ExampleTable_AddFloats() {
	tab, err := datasets.ReadCSV(strings.NewReader("host,cpu_usage\nweb-1,12.5\nweb-2,97\n"))
	if err != nil {
		log.Fatal(err)
	}
	if err := tab.AddFloats("energy", []float64{1.25, 30}); err != nil {
		log.Fatal(err)
	}
	if err := tab.AddBools("anomaly", []bool{false, true}); err != nil {
		log.Fatal(err)
	}
	if err := datasets.WriteCSV(os.Stdout, tab); err != nil {
		log.Fatal(err)
	}
	// Output:
	// host,cpu_usage,energy,anomaly
	// web-1,12.5,1.25,false
	// web-2,97.0,30.0,true
}

// Generate a fleet of four hosts, one of each role, and count the test
// period's anomalies of each kind.
func ExampleGenerateFleet() {
	cfg := datasets.DefaultFleetConfig()
	cfg.Hosts = 4
	f, err := datasets.GenerateFleet(cfg)
	if err != nil {
		log.Fatal(err)
	}
	hosts := make([]string, len(f.Hosts))
	for i, h := range f.Hosts {
		hosts[i] = fmt.Sprintf("%s (%s)", h.Name, h.Role)
	}
	fmt.Println(strings.Join(hosts, ", "))
	fmt.Printf("training rows %d, test rows %d\n", f.Train.Len(), f.Test.Len())
	kind, _ := f.Test.Column("kind")
	rows := map[string]int{}
	for _, k := range kind.Strings {
		if k != "" {
			rows[k]++
		}
	}
	for _, k := range datasets.AnomalyKinds() {
		fmt.Printf("%s: %d rows\n", k, rows[k])
	}
	// Output:
	// db-1 (database), web-1 (web), batch-1 (batch), cache-1 (cache)
	// training rows 4000, test rows 4000
	// contextual: 31 rows
	// correlation: 24 rows
	// spike: 29 rows
}
