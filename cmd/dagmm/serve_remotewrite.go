package main

import (
	"flag"
	"fmt"

	"github.com/dagmm/dagmm/serve"
	"github.com/dagmm/dagmm/serve/ingest"
)

// remoteWriteFlags registers the flags of serve's remote write input
// (serve.RemoteWriteConfig) on fs; the mapping file's path goes to *mapping.
func remoteWriteFlags(fs *flag.FlagSet, cfg *serve.Config, mapping *string) {
	rw := &cfg.RemoteWrite
	*rw = serve.DefaultConfig().RemoteWrite
	fs.BoolVar(&rw.Enabled, "remote-write", rw.Enabled, "take Prometheus remote write (1.0) at POST "+serve.RemoteWritePath+" and join the samples per host and evaluation into the model's vectors: by default feature f is the series dagmm:f of deploy/prometheus/rules.yaml")
	fs.StringVar(&rw.HostLabel, "remote-write-host-label", rw.HostLabel, "with --remote-write, the `label` naming the host")
	fs.DurationVar(&rw.Interval, "remote-write-interval", rw.Interval, "with --remote-write, Prometheus's evaluation_interval (of the recording rules)")
	fs.StringVar(mapping, "remote-write-mapping", "", "with --remote-write, a mapping `file` (JSON, as --mapping's) saying which series make each feature; overrides --remote-write-host-label (and the interval, unless --remote-write-interval is given)")
	fs.Var(byteSize{&rw.MaxDecodedBytes}, "remote-write-max-decoded", "with --remote-write, largest request body once decompressed, in `bytes` (e.g. 32MiB); larger is answered 413")
	fs.DurationVar(&rw.Flush, "remote-write-flush", rw.Flush, "with --remote-write, how often the intervals past their deadline are finalised")
}

// applyRemoteWrite completes cfg for --remote-write: the mapping file.
func applyRemoteWrite(fs *flag.FlagSet, cfg *serve.Config, mapping string) error {
	if !cfg.RemoteWrite.Enabled {
		for _, name := range []string{"remote-write-host-label", "remote-write-interval", "remote-write-mapping", "remote-write-max-decoded", "remote-write-flush"} {
			if flagGiven(fs, name) {
				return usagef("--%s needs --remote-write", name)
			}
		}
		return nil
	}
	if mapping == "" {
		return nil
	}
	m, err := ingest.LoadConfig(mapping)
	if err != nil {
		return fmt.Errorf("remote write mapping %s: %w", mapping, err)
	}
	if flagGiven(fs, "remote-write-interval") {
		m.Interval, m.Wait, m.HostTTL = cfg.RemoteWrite.Interval, 0, 0
		if err := m.Validate(); err != nil {
			return usagef("--remote-write-interval %v: %v", cfg.RemoteWrite.Interval, err)
		}
	}
	cfg.RemoteWrite.Mapping = &m
	return nil
}
