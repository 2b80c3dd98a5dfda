package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/dagmm/dagmm/datasets"
	"github.com/dagmm/dagmm/fleet"
	"github.com/dagmm/dagmm/internal/natsauth"
	"github.com/dagmm/dagmm/serve/ingest"
)

// promHistory is prom pull's fleet option: the pulled rows fill each
// host's history in the fleet's history stream, so that the trainers have
// windows to train on from the start.
type promHistory struct {
	natsURL string
	auth    natsauth.Config
	cfg     fleet.HistoryConfig
}

func (h *promHistory) addFlags(fs *flag.FlagSet) {
	d := fleet.DefaultHistoryConfig()
	fs.StringVar(&h.natsURL, "history", "", "fleet mode: also publish each host's latest pulled rows (up to the stream's per-host limit) to its history on the NATS server at `URL`, for the trainers; hosts that already have history are left alone")
	fs.StringVar(&h.cfg.Stream, "history-stream", d.Stream, "with --history, the history `stream` (dagmm serve --fleet's --history-stream)")
	fs.StringVar(&h.cfg.Subject, "subject", d.Subject, "with --history, the `subject` samples arrive on (dagmm serve's --subject)")
	h.auth.AddFlags(fs)
}

// fill publishes t's rows to the history of every host that has none yet
// and reports what it did on w.
func (h *promHistory) fill(ctx context.Context, w io.Writer, t *datasets.Table) error {
	auth, err := h.auth.Options()
	if err != nil {
		return err
	}
	nc, err := nats.Connect(h.natsURL, append(auth, nats.Name("dagmm prom pull"), nats.Timeout(10*time.Second))...)
	if err != nil {
		return fmt.Errorf("history: connect to %s: %w", h.natsURL, err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	hist, err := fleet.EnsureHistory(ctx, js, h.cfg)
	if err != nil {
		return err
	}
	have, err := hist.Counts(ctx)
	if err != nil {
		return err
	}
	rows, filled, skipped, err := historyRows(t, hist.Limit(), have)
	if err != nil {
		return err
	}
	if len(rows) > 0 {
		if err := publishFleetHistory(ctx, js, hist, t, t.Names()[2:], rows); err != nil {
			return fmt.Errorf("history %s: %w", hist.Stream(), err)
		}
	}
	fmt.Fprintf(w, "history %s: %d samples of %d hosts published; %d hosts already had history and were left alone\n",
		hist.Stream(), len(rows), filled, skipped)
	return nil
}

// historyRows returns the rows to publish, in order: each host's latest
// limit rows, for the hosts without history (have counts the messages per
// host token); and the numbers of hosts filled and left alone. A window is
// read in stream order, so older samples published after a host's live
// ones would come out of order.
func historyRows(t *datasets.Table, limit int, have map[string]uint64) (rows []int, filled, skipped int, err error) {
	hosts, groups, err := hostGroups(t)
	if err != nil {
		return nil, 0, 0, err
	}
	for i, h := range hosts {
		if have[ingest.HostToken(h)] > 0 {
			skipped++
			continue
		}
		g := groups[i]
		rows = append(rows, g[max(0, len(g)-limit):]...)
		filled++
	}
	return rows, filled, skipped, nil
}
