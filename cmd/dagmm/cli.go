package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
)

// cliEnv is what every command shares: its output streams and logger.
type cliEnv struct {
	stdout, stderr io.Writer
	log            *slog.Logger
	// tty reports whether stderr is a terminal (progress bars) rather than a
	// log collector (structured lines).
	tty bool
}

func newCLIEnv(stdout, stderr io.Writer) *cliEnv {
	tty := false
	if f, ok := stderr.(*os.File); ok {
		if fi, err := f.Stat(); err == nil {
			tty = fi.Mode()&os.ModeCharDevice != 0
		}
	}
	return &cliEnv{
		stdout: stdout,
		stderr: stderr,
		log:    slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo})),
		tty:    tty,
	}
}

// quiet returns a copy of env that logs warnings and errors only.
func (env *cliEnv) quiet() *cliEnv {
	q := *env
	q.log = slog.New(slog.NewTextHandler(env.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	return &q
}

// newFlagSet returns a FlagSet whose --help prints the command's synopsis,
// description, flags and examples.
func newFlagSet(env *cliEnv, name, synopsis, description, examples string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(env.stderr)
	fs.Usage = func() {
		w := env.stdout
		fmt.Fprintf(w, "Usage:\n  dagmm %s %s\n\n%s\n\nFlags:\n", name, synopsis, strings.TrimSpace(description))
		fs.SetOutput(w)
		fs.PrintDefaults()
		fs.SetOutput(env.stderr)
		if examples != "" {
			fmt.Fprintf(w, "\nExamples:\n%s\n", strings.TrimRight(examples, "\n"))
		}
	}
	return fs
}

// parseFlags parses args and turns flag errors into usage errors.
func parseFlags(fs *flag.FlagSet, args []string) error {
	fs.SetOutput(io.Discard)
	err := fs.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp): // the FlagSet has printed its Usage
		return flag.ErrHelp
	case err != nil:
		return usageError{err.Error()}
	}
	return nil
}

// listFlag is a comma-separated list of names.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }

func (l *listFlag) Set(s string) error {
	*l = (*l)[:0]
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			*l = append(*l, p)
		}
	}
	return nil
}

// intListFlag is a comma-separated list of positive integers, such as layer sizes.
type intListFlag []int

func (l *intListFlag) String() string {
	parts := make([]string, len(*l))
	for i, v := range *l {
		parts[i] = fmt.Sprint(v)
	}
	return strings.Join(parts, ",")
}

func (l *intListFlag) Set(s string) error {
	var out []int
	for _, p := range strings.Split(s, ",") {
		var v int
		if _, err := fmt.Sscan(strings.TrimSpace(p), &v); err != nil || v <= 0 {
			return fmt.Errorf("%q is not a positive integer", p)
		}
		out = append(out, v)
	}
	*l = out
	return nil
}
