package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dagmm/dagmm/internal/modeltest"
	"github.com/dagmm/dagmm/model"
)

// TestMain runs the command line in DAGMM_TEST_MAIN (fields) instead of the
// tests when it is set: how TestServeMemorySubprocess and
// TestServePartitionsProcesses start dagmm serve as processes of their own.
func TestMain(m *testing.M) {
	if args := os.Getenv("DAGMM_TEST_MAIN"); args != "" {
		os.Args = append([]string{"dagmm"}, strings.Fields(args)...)
		main()
	}
	os.Exit(m.Run())
}

// TestServeMemorySubprocess starts dagmm serve as a subprocess (this test
// binary, or the binary in DAGMM_BIN) with a Go memory limit of 512 MiB,
// sends it 48 requests of the largest size (8 MiB, 10,000 samples) at
// once, and reads the process's peak resident memory (VmHWM): it must stay
// under the limit, the requests over the bound on bytes in flight answered
// 429, the others 200. DAGMM_MEMORY_ARGS replaces the memory flags (e.g.
// "--memory-limit -1" for none), and DAGMM_MEMORY_QUERY is added to the
// URL (e.g. "?explain=all"), to measure other settings.
func TestServeMemorySubprocess(t *testing.T) {
	if testing.Short() {
		t.Skip("sends 48 × 8 MiB to a subprocess; skipped with -short")
	}
	if _, err := os.Stat("/proc/self/status"); err != nil {
		t.Skip("needs /proc to read the peak resident memory")
	}
	const limit = 512 << 20
	dir := t.TempDir()
	m := modeltest.Metrics4(1)
	path := filepath.Join(dir, "model.json")
	if err := model.Save(path, m); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	memArgs := os.Getenv("DAGMM_MEMORY_ARGS")
	if memArgs == "" {
		memArgs = "--memory-limit 512MiB"
	}
	args := fmt.Sprintf("serve --model %s --no-nats --poll 0 --http %s %s", path, addr, memArgs)
	bin, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	var cmd *exec.Cmd
	if b := os.Getenv("DAGMM_BIN"); b != "" {
		cmd = exec.Command(b, strings.Fields(args)...)
	} else {
		cmd = exec.Command(bin)
		cmd.Env = append(os.Environ(), "DAGMM_TEST_MAIN="+args)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := strconv.Itoa(cmd.Process.Pid)
	logs := make(chan string, 1)
	go func() {
		var b strings.Builder
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if strings.Contains(sc.Text(), "msg=memory") {
				b.WriteString(sc.Text())
			}
		}
		logs <- b.String()
	}()
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		cmd.Wait()
	})
	waitVersion(t, addr, "")

	body, err := modeltest.MaxSizeBody(m, 10000, 8<<20)
	if err != nil {
		t.Fatal(err)
	}
	before := procStatus(pid, "VmHWM")
	codes, errs := postAll("http://"+addr+"/v1/score"+os.Getenv("DAGMM_MEMORY_QUERY"), body, 48)
	hwm := procStatus(pid, "VmHWM")
	time.Sleep(5 * time.Second)
	rss := procStatus(pid, "VmRSS")
	cmd.Process.Signal(os.Interrupt)
	cmd.Wait()
	t.Logf("dagmm serve %s: 48 requests of %d bytes: %v; VmHWM %.1f MiB before the load, %.1f MiB after; VmRSS 5 s later %.1f MiB; %s",
		memArgs, len(body), codes, mib(before), mib(hwm), mib(rss), <-logs)
	if len(errs) > 0 {
		t.Errorf("%d requests failed: %v", len(errs), errs[0])
	}
	for code, n := range codes {
		if code != http.StatusOK && code != http.StatusTooManyRequests {
			t.Errorf("%d requests answered %d, want 200 or 429", n, code)
		}
	}
	if codes[http.StatusOK] == 0 {
		t.Errorf("no request scored: %v", codes)
	}
	if os.Getenv("DAGMM_MEMORY_ARGS") == "" && hwm > limit {
		t.Errorf("peak resident memory %.1f MiB, over the memory limit of %.1f MiB", mib(hwm), mib(limit))
	}
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }

// procStatus returns a memory field of /proc/PID/status in bytes.
func procStatus(pid, field string) uint64 {
	b, err := os.ReadFile("/proc/" + pid + "/status")
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			kb, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// postAll sends body to url from clients goroutines at once, each on its
// own connection, and counts the answers by status.
func postAll(url string, body []byte, clients int) (map[int]int, []error) {
	codes := map[int]int{}
	var errs []error
	var mu sync.Mutex
	var wg sync.WaitGroup
	gate := make(chan struct{})
	for range clients {
		wg.Go(func() {
			client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: time.Minute}
			<-gate
			resp, err := client.Post(url, "application/json", bytes.NewReader(body))
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			codes[resp.StatusCode]++
		})
	}
	close(gate)
	wg.Wait()
	return codes, errs
}
