package ingest_test

import (
	"fmt"
	"time"

	"github.com/dagmm/dagmm/serve/ingest"
)

func ExampleSampleDecoder() {
	d, err := ingest.NewSampleDecoder([]string{"cpu_usage", "mem_usage", "disk_busy", "net_in_bps"})
	if err != nil {
		panic(err)
	}
	good := []byte(`{"host":"web-1","ts":"2026-11-24T10:00:00Z","values":{"cpu_usage":37.5,"mem_usage":61.2,"disk_busy":12.0,"net_in_bps":1.2e6}}`)
	samples, err := d.Decode(good, time.Now())
	if err != nil {
		panic(err)
	}
	fmt.Println(samples[0].Host, samples[0].TS.Format(time.RFC3339), samples[0].Values)

	bad := []byte(`[
	  {"host":"web-1","values":{"cpu_usage":37.5,"mem_usage":61.2,"disk_busy":12.0,"net_in_bps":1.2e6}},
	  {"host":"web-2","values":{"cpu_usage":35,"mem_usage":58,"disk_busy":"NaN","net_in_bps":1e6}}
	]`)
	_, err = d.Decode(bad, time.Now())
	fmt.Println(err)
	// Output:
	// web-1 2026-11-24T10:00:00Z [37.5 61.2 12 1.2e+06]
	// ingest: sample 1 (offset 175): feature "disk_busy": value is not finite: got the string "NaN"; JSON numbers cannot be NaN or infinite
}

// Two intervals of one host, as Telegraf's outputs.nats publishes them (one
// message per measurement, influx line protocol, 10 s interval). The first
// interval only primes the counters.
func ExampleAssembler() {
	a, err := ingest.NewAssembler(ingest.DefaultConfig(), []string{"cpu_usage", "mem_usage", "disk_busy", "net_in_bps"},
		ingest.WithIncomplete(func(i ingest.Incomplete) { fmt.Println("incomplete:", i.Host, i.TS.Format(time.TimeOnly), i.Missing) }))
	if err != nil {
		panic(err)
	}
	messages := []string{
		"cpu,cpu=cpu-total,host=web-1 usage_idle=62.5 1795514400000000000\n",
		"mem,host=web-1 used_percent=41.3 1795514400000000000\n",
		"diskio,host=web-1,name=sda io_time=120000i 1795514400000000000\n",
		"net,host=web-1,interface=eth0 bytes_recv=5000000000i 1795514400000000000\n",
		"cpu,cpu=cpu-total,host=web-1 usage_idle=60 1795514410000000000\n",
		"mem,host=web-1 used_percent=41.5 1795514410000000000\n",
		"diskio,host=web-1,name=sda io_time=121500i 1795514410000000000\n",           // +1500 ms in 10 s: 15 % busy
		"net,host=web-1,interface=eth0 bytes_recv=5001500000i 1795514410000000000\n", // +1.5 MB in 10 s: 1.2 Mbit/s
	}
	recv := time.Unix(1795514401, 0)
	for i, m := range messages {
		if i == 4 {
			recv = recv.Add(10 * time.Second)
		}
		vectors, err := a.AddMessage([]byte(m), ingest.FormatInflux, recv)
		if err != nil {
			panic(err)
		}
		for _, v := range vectors {
			fmt.Println(v.Host, v.TS.Format(time.TimeOnly), v.Values)
		}
	}
	// Output:
	// incomplete: web-1 10:00:00 [{disk_busy first observation of a counter} {net_in_bps first observation of a counter}]
	// web-1 10:00:10 [40 41.5 15 1.2e+06]
}
