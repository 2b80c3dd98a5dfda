package serve

import (
	"strings"
	"sync"

	"github.com/dagmm/dagmm/model"
)

// maxWindowHosts bounds the hosts whose recent energies a model with a
// window keeps: about 1 KiB each with the default window, so 100 MiB at
// most. Over it, a host picked at random is forgotten (its next sample
// starts a new window).
const maxWindowHosts = 100_000

// hostWindows holds each host's recent energies for a model that scores
// over a window of a host's samples ([model.Scorer.Smooth]). It is safe
// for concurrent use; samples of one host are taken in the order workers
// score them, which is their arrival order but for messages scored at the
// same moment.
type hostWindows struct {
	s   *model.Scorer
	max int

	mu sync.Mutex
	m  map[string]*model.History
}

// newHostWindows returns the windows of s's hosts, or nil when s has no
// window.
func newHostWindows(s *model.Scorer, max int) *hostWindows {
	if s.Window() <= 1 {
		return nil
	}
	return &hostWindows{s: s, max: max, m: make(map[string]*model.History)}
}

// smooth turns r, the stateless result of one of host's samples, into its
// result over host's window. A sample without a host is scored alone.
func (hw *hostWindows) smooth(host string, r *model.Result) {
	if host == "" {
		return
	}
	hw.mu.Lock()
	defer hw.mu.Unlock()
	h, ok := hw.m[host]
	if !ok {
		if len(hw.m) >= hw.max {
			for k := range hw.m {
				delete(hw.m, k)
				break
			}
		}
		h = hw.s.NewHistory()
		hw.m[strings.Clone(host)] = h
	}
	hw.s.Smooth(h, r)
}
