package main

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"runtime/debug"
	"strconv"
	"strings"

	"github.com/KimMachineGun/automemlimit/memlimit"
)

// byteSize is a flag of a size in bytes: an integer with an optional
// suffix KiB, MiB, GiB (powers of 1024) or KB, MB, GB (powers of 1000).
type byteSize struct{ p *int64 }

var sizeSuffixes = []struct {
	suffix string
	mult   int64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30},
	{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"B", 1},
}

func (b byteSize) String() string {
	if b.p == nil {
		return "0"
	}
	return strconv.FormatInt(*b.p, 10)
}

func (b byteSize) Set(s string) error {
	num, mult := strings.TrimSpace(s), int64(1)
	for _, u := range sizeSuffixes {
		if strings.HasSuffix(num, u.suffix) {
			num, mult = strings.TrimSpace(strings.TrimSuffix(num, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil {
		return fmt.Errorf("%q is not a size: want bytes, or a number with KiB, MiB, GiB, KB, MB or GB", s)
	}
	if n != 0 && (n > math.MaxInt64/mult || n < math.MinInt64/mult) {
		return fmt.Errorf("%q is too large", s)
	}
	*b.p = n * mult
	return nil
}

// memoryLimitRatio is the share of the cgroup's memory limit given to the
// Go runtime: the rest is for memory the Go runtime does not count (thread
// stacks of the OS, the binary) and for headroom.
const memoryLimitRatio = 0.9

// setMemoryLimit sets the Go runtime's memory limit and returns it
// (math.MaxInt64 for none) with where it came from. flag > 0 sets it;
// flag < 0 leaves it unset; flag == 0 keeps GOMEMLIMIT when the
// environment sets it, else takes 90% of the cgroup's memory limit (v2
// memory.max or v1 memory.limit_in_bytes) when there is one.
func setMemoryLimit(flag int64, lookup func(string) (string, bool)) (limit int64, source string, err error) {
	switch {
	case flag > 0:
		debug.SetMemoryLimit(flag)
		return flag, "--memory-limit", nil
	case flag < 0:
		debug.SetMemoryLimit(math.MaxInt64)
		return math.MaxInt64, "none (--memory-limit -1)", nil
	}
	if v, ok := lookup("GOMEMLIMIT"); ok && v != "" {
		return debug.SetMemoryLimit(-1), "GOMEMLIMIT", nil
	}
	l, err := memlimit.Set(
		memlimit.WithRatio(memoryLimitRatio),
		memlimit.WithProvider(memlimit.FromCgroup),
		memlimit.WithLogger(slog.New(slog.DiscardHandler)),
	)
	switch {
	case err == nil && l < math.MaxInt64:
		return l, "cgroup", nil
	case err == nil,
		errors.Is(err, memlimit.ErrNoCgroup), errors.Is(err, memlimit.ErrCgroupsNotSupported), errors.Is(err, os.ErrNotExist):
		return math.MaxInt64, "none (no cgroup memory limit)", nil
	}
	return math.MaxInt64, "none", fmt.Errorf("reading the cgroup memory limit: %w", err)
}
