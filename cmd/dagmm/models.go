package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/dagmm/dagmm/fleet"
	"github.com/dagmm/dagmm/internal/natsauth"
	"github.com/dagmm/dagmm/model"
)

// modelsOptions are the settings of dagmm models.
type modelsOptions struct {
	natsURL string
	auth    natsauth.Config
	objects string
	index   string
	to      uint64
	json    bool
	timeout time.Duration
}

func runModels(ctx context.Context, env *cliEnv, args []string) error {
	fs := newFlagSet(env, "models", "list | show HOST | rollback HOST [--to VERSION] | publish HOST FILE  [flags]",
		`Models manages the fleet's per-host models in the registry on NATS
JetStream: an Object Store bucket holds every version of every host's model
artifact, and a KV bucket each host's current version, with the history of
its changes.

  list                 every host's current version
  show HOST            the host's current version, the versions kept and the
                       last changes of its current version
  rollback HOST        make the version before the current one current again
                       (--to VERSION: that version); it is read and validated
                       first, and a corrupted one is refused
  publish HOST FILE    validate the artifact FILE (written by dagmm train) and
                       make it the host's next, current version

Scorers watching the registry load a new current version while serving.
Flags may come before or after the arguments. The flags that say where
the registry is can also be set with an environment variable, shown in
brackets: a flag on the command line wins over the environment.`,
		`  dagmm models list --nats-url nats://nats:4222
  dagmm models show web-1.example.com
  dagmm models rollback web-1.example.com
  dagmm models rollback web-1.example.com --to 3
  dagmm models publish web-1.example.com model.json
  dagmm models list --json | jq -r '.[].host'`)
	d := fleet.DefaultRegistryConfig()
	var o modelsOptions
	fs.StringVar(&o.natsURL, "nats-url", nats.DefaultURL, "NATS server `URL`s, comma-separated")
	o.auth.AddFlags(fs)
	fs.StringVar(&o.objects, "registry-objects", d.Objects, "Object Store `bucket` of the model artifacts")
	fs.StringVar(&o.index, "registry-index", d.Index, "KV `bucket` of the hosts' current versions")
	// Only the flags above, where the registry is, come from the
	// environment too; the ones below are about one command line.
	documentEnv(fs)
	fromEnv := map[string]bool{}
	fs.VisitAll(func(f *flag.Flag) { fromEnv[envName(f.Name)] = true })
	fs.Uint64Var(&o.to, "to", 0, "rollback: the `version` to make current; 0 for the one before the current")
	fs.BoolVar(&o.json, "json", false, "list, show: print JSON instead of a table")
	fs.DurationVar(&o.timeout, "timeout", 30*time.Second, "give up after this long")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if err := applyEnv(fs, func(name string) (string, bool) {
		if !fromEnv[name] {
			return "", false
		}
		return os.LookupEnv(name)
	}); err != nil {
		return err
	}
	if len(pos) == 0 {
		return usagef("which action? list, show HOST, rollback HOST or publish HOST FILE")
	}
	want := map[string]int{"list": 0, "show": 1, "rollback": 1, "publish": 2}
	n, ok := want[pos[0]]
	switch {
	case !ok:
		return usagef("unknown action %q: want list, show, rollback or publish", pos[0])
	case len(pos)-1 != n:
		return usagef("%s takes %d argument(s), got %d: %q", pos[0], n, len(pos)-1, pos[1:])
	case o.to != 0 && pos[0] != "rollback":
		return usagef("--to is for rollback")
	case o.timeout <= 0:
		return usagef("--timeout %v: want a positive duration", o.timeout)
	}
	var artifact []byte
	if pos[0] == "publish" { // a bad file is refused before anything is created
		if artifact, err = readArtifact(pos[1], pos[2]); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	reg, nc, err := o.open(ctx, pos[0] == "publish")
	if err != nil {
		return err
	}
	defer nc.Close()
	switch pos[0] {
	case "list":
		return modelsList(ctx, env.stdout, reg, o.json)
	case "show":
		return modelsShow(ctx, env.stdout, reg, pos[1], o.json)
	case "rollback":
		return modelsRollback(ctx, env.stdout, reg, pos[1], o.to)
	default:
		return modelsPublish(ctx, env.stdout, reg, pos[1], pos[2], artifact)
	}
}

// parseInterleaved parses flags that may come before, between or after the
// positional arguments, and returns the positional arguments.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := parseFlags(fs, args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// open connects to NATS and binds the registry; only publish creates its
// buckets when they are missing.
func (o *modelsOptions) open(ctx context.Context, create bool) (*fleet.Registry, *nats.Conn, error) {
	opts, err := o.auth.Options()
	if err != nil {
		return nil, nil, err
	}
	opts = append(opts, nats.Name("dagmm models"), nats.Timeout(min(o.timeout, 10*time.Second)))
	nc, err := nats.Connect(o.natsURL, opts...)
	if err != nil {
		return nil, nil, fmt.Errorf("nats connect %s: %w", o.natsURL, err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("jetstream on %s: %w", o.natsURL, err)
	}
	cfg := fleet.RegistryConfig{Objects: o.objects, Index: o.index}
	var reg *fleet.Registry
	if create {
		reg, err = fleet.NewRegistry(ctx, js, cfg)
	} else {
		reg, err = fleet.OpenRegistry(ctx, js, cfg)
	}
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		err = fmt.Errorf("no model registry on %s (nothing published yet?): %w", o.natsURL, err)
	}
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	return reg, nc, nil
}

// shortDigest is the first 12 hex digits of a digest, enough to tell
// versions apart in a table.
func shortDigest(d string) string { return d[:min(12, len(d))] }

func timeString(t time.Time) string { return t.UTC().Format(time.RFC3339) }

func modelsList(ctx context.Context, w io.Writer, reg *fleet.Registry, asJSON bool) error {
	list, err := reg.List(ctx)
	if err != nil {
		return err
	}
	if asJSON {
		return writeJSON(w, nonNil(list))
	}
	if len(list) == 0 {
		_, err := fmt.Fprintln(w, "no models in the registry")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "HOST\tVERSION\tDIGEST\tSIZE\tCREATED")
	for _, m := range list {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%d\t%s\n", m.Host, m.Version, shortDigest(m.Digest), m.Size, timeString(m.Created))
	}
	return tw.Flush()
}

// modelsShowJSON is the JSON of dagmm models show.
type modelsShowJSON struct {
	Current  fleet.ModelInfo   `json:"current"`
	Versions []fleet.ModelInfo `json:"versions"`
	History  []modelsChange    `json:"history"`
}

// modelsChange is a fleet.Change with its time, which Change leaves out of
// its JSON (it comes from the KV entry, not the value).
type modelsChange struct {
	fleet.Change
	At time.Time `json:"at"`
}

func modelsShow(ctx context.Context, w io.Writer, reg *fleet.Registry, host string, asJSON bool) error {
	cur, err := reg.Current(ctx, host)
	if err != nil {
		return err
	}
	versions, err := reg.Versions(ctx, host)
	if err != nil {
		return err
	}
	hist, err := reg.History(ctx, host)
	if err != nil {
		return err
	}
	if asJSON {
		out := modelsShowJSON{Current: cur, Versions: nonNil(versions), History: []modelsChange{}}
		for _, c := range hist {
			out.History = append(out.History, modelsChange{c, c.At})
		}
		return writeJSON(w, out)
	}
	fmt.Fprintf(w, "host %s\ncurrent: version %d, digest %s, %d bytes, created %s\n\nversions kept:\n",
		host, cur.Version, cur.Digest, cur.Size, timeString(cur.Created))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  \tVERSION\tDIGEST\tSIZE\tCREATED")
	for _, m := range versions {
		mark := ""
		if m.Version == cur.Version {
			mark = "*"
		}
		fmt.Fprintf(tw, "  %s\t%d\t%s\t%d\t%s\n", mark, m.Version, shortDigest(m.Digest), m.Size, timeString(m.Created))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "\nchanges of the current version (oldest first, the last %d kept):\n", reg.Config().History)
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  AT\tVERSION\tCHANGE")
	for _, c := range hist {
		what := c.Cause
		if c.From != 0 {
			what += " (was version " + strconv.FormatUint(c.From, 10) + ")"
		}
		fmt.Fprintf(tw, "  %s\t%d\t%s\n", timeString(c.At), c.Version, what)
	}
	return tw.Flush()
}

func modelsRollback(ctx context.Context, w io.Writer, reg *fleet.Registry, host string, to uint64) error {
	before, err := reg.Current(ctx, host)
	if err != nil {
		return err
	}
	info, err := reg.Rollback(ctx, host, to)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "host %s: rolled back from version %d to version %d (digest %s)\n", host, before.Version, info.Version, shortDigest(info.Digest))
	return err
}

// readArtifact reads the model artifact at path and validates it.
func readArtifact(host, path string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("publish host %s: %w", host, err)
	}
	if _, _, err := model.DecodeDigest(bytes.NewReader(data)); err != nil {
		return nil, fmt.Errorf("publish host %s: %s is not a valid model artifact: %w", host, path, err)
	}
	return data, nil
}

func modelsPublish(ctx context.Context, w io.Writer, reg *fleet.Registry, host, path string, data []byte) error {
	info, err := reg.Publish(ctx, host, data)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	_, err = fmt.Fprintf(w, "host %s: published %s as version %d (digest %s, %d bytes); it is current\n", host, path, info.Version, shortDigest(info.Digest), info.Size)
	return err
}

// nonNil returns s, or an empty slice for nil, so that JSON shows [].
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
