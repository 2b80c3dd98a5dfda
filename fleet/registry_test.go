package fleet

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/dagmm/dagmm/internal/modeltest"
	"github.com/dagmm/dagmm/model"
)

// regTestRegistry starts a server and returns a registry on it, with its
// JetStream for tests that reach under it.
func regTestRegistry(t testing.TB, cfg RegistryConfig) (*Registry, jetstream.JetStream) {
	t.Helper()
	_, js := connectJS(t, runNATS(t))
	r, err := NewRegistry(testContext(t, 30*time.Second), js, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return r, js
}

// regArtifact returns the encoded four-metric test model of seed and its
// digest.
func regArtifact(t testing.TB, seed uint64) ([]byte, string) {
	t.Helper()
	var b bytes.Buffer
	if err := model.Encode(&b, modeltest.Metrics4(seed)); err != nil {
		t.Fatal(err)
	}
	_, digest, err := model.DecodeDigest(bytes.NewReader(b.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	return b.Bytes(), digest
}

// publish publishes the model of seed for host and checks the version.
func publish(t testing.TB, r *Registry, host string, seed, wantVersion uint64) ModelInfo {
	t.Helper()
	data, digest := regArtifact(t, seed)
	info, err := r.Publish(testContext(t, 30*time.Second), host, data)
	if err != nil {
		t.Fatalf("publish %q seed %d: %v", host, seed, err)
	}
	if info.Host != host || info.Version != wantVersion || info.Digest != digest || info.Size != int64(len(data)) || info.Created.IsZero() {
		t.Fatalf("publish %q seed %d: got %+v, want version %d digest %s size %d", host, seed, info, wantVersion, digest, len(data))
	}
	return info
}

// wantCurrent checks the host's current version, and that loading it gives
// the model published with it.
func wantCurrent(t testing.TB, r *Registry, want ModelInfo) {
	t.Helper()
	ctx := testContext(t, 30*time.Second)
	cur, err := r.Current(ctx, want.Host)
	if err != nil {
		t.Fatalf("current %q: %v", want.Host, err)
	}
	if !sameInfo(cur, want) {
		t.Fatalf("current %q: got %+v, want %+v", want.Host, cur, want)
	}
	data, info, err := r.Get(ctx, want.Host)
	if err != nil {
		t.Fatalf("get %q: %v", want.Host, err)
	}
	_, digest, err := model.DecodeDigest(bytes.NewReader(data))
	if err != nil || digest != want.Digest || !sameInfo(info, want) {
		t.Fatalf("get %q: digest %s (err %v), info %+v; want %+v", want.Host, digest, err, info, want)
	}
	m, info, err := r.Load(ctx, want.Host)
	if err != nil || m == nil || !sameInfo(info, want) {
		t.Fatalf("load %q: %v, info %+v; want %+v", want.Host, err, info, want)
	}
}

func sameInfo(a, b ModelInfo) bool {
	return a.Host == b.Host && a.Version == b.Version && a.Digest == b.Digest && a.Size == b.Size && a.Created.Equal(b.Created)
}

func TestHostKey(t *testing.T) {
	keyRe := regexp.MustCompile(`^[-_=a-zA-Z0-9]+$`) // a KV key of one token
	hosts := []string{
		"web-1", "db.eu-west.example.com", "a.b", "a=2Eb", "a=b", "x/y", "%41", "_", "-",
		"user@host:8080", "[::1]", "ünïcödé.例え", "emoji-🙂", "quote\"s'", strings.Repeat("h", 255),
		strings.Repeat("é", 127),
	}
	seen := map[string]string{}
	for _, h := range hosts {
		k := hostKey(h)
		if !keyRe.MatchString(k) {
			t.Errorf("hostKey(%q) = %q: not a one-token KV key", h, k)
		}
		if other, ok := seen[k]; ok {
			t.Errorf("hostKey(%q) = hostKey(%q) = %q", h, other, k)
		}
		seen[k] = h
		back, err := parseHostKey(k)
		if err != nil || back != h {
			t.Errorf("parseHostKey(hostKey(%q) = %q) = %q, %v", h, k, back, err)
		}
	}
	if got := hostKey("db.eu"); got != "db=2Eeu" {
		t.Errorf(`hostKey("db.eu") = %q, want "db=2Eeu"`, got)
	}
	for _, tc := range []struct{ key, want string }{
		{"", "empty"},
		{"a.b", "byte 1"},
		{"a=2", "byte 1"},
		{"a=2e", "byte 1"}, // lower-case hex: never written
		{"=41", "never escaped"},
		{"=zz", "byte 0"},
	} {
		if h, err := parseHostKey(tc.key); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("parseHostKey(%q) = %q, %v; want an error with %q", tc.key, h, err, tc.want)
		}
	}
}

func TestRegistryConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  RegistryConfig
		want string // "" for valid
	}{
		{"zero value", RegistryConfig{}, ""},
		{"all set", RegistryConfig{Objects: "m", Index: "i", History: 64, Keep: 2, Replicas: 3}, ""},
		{"objects bucket with a dot", RegistryConfig{Objects: "a.b"}, `objects bucket "a.b"`},
		{"index bucket with a space", RegistryConfig{Index: "a b"}, `index bucket "a b"`},
		{"history over 64", RegistryConfig{History: 65}, "history 65"},
		{"negative history", RegistryConfig{History: -1}, "history -1"},
		{"keep 1", RegistryConfig{Keep: 1}, "keep 1"},
		{"replicas 6", RegistryConfig{Replicas: 6}, "replicas 6"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("Validate: %v", err)
			case tc.want == "":
				d := DefaultRegistryConfig()
				if tc.cfg.Objects == "" || tc.cfg.Index == "" || tc.cfg.History == 0 || tc.cfg.Keep == 0 || tc.cfg.Replicas == 0 || tc.cfg.Log == nil {
					t.Fatalf("defaults not filled: %+v (defaults %+v)", tc.cfg, d)
				}
			case err == nil || !strings.Contains(err.Error(), tc.want):
				t.Fatalf("Validate = %v, want an error with %q", err, tc.want)
			}
		})
	}
}

func TestRegistryPublishRollback(t *testing.T) {
	r, _ := regTestRegistry(t, RegistryConfig{})
	ctx := testContext(t, 30*time.Second)
	const host = "web-1.example.com"
	if _, err := r.Current(ctx, host); !errors.Is(err, ErrNoModel) || !strings.Contains(err.Error(), host) {
		t.Fatalf("current before any publish: %v, want ErrNoModel naming the host", err)
	}
	if _, _, err := r.Load(ctx, host); !errors.Is(err, ErrNoModel) {
		t.Fatalf("load before any publish: %v, want ErrNoModel", err)
	}
	v1 := publish(t, r, host, 1, 1)
	wantCurrent(t, r, v1)
	v2 := publish(t, r, host, 2, 2)
	wantCurrent(t, r, v2)
	if v1.Digest == v2.Digest {
		t.Fatal("two seeds gave the same model")
	}

	vs, err := r.Versions(ctx, host)
	if err != nil || len(vs) != 2 || !sameInfo(vs[0], v1) || !sameInfo(vs[1], v2) {
		t.Fatalf("versions: %+v, %v; want v1, v2", vs, err)
	}
	got, err := r.Rollback(ctx, host, 0)
	if err != nil || !sameInfo(got, v1) {
		t.Fatalf("rollback: %+v, %v; want v1", got, err)
	}
	wantCurrent(t, r, v1)
	// The version before 1: none.
	if _, err := r.Rollback(ctx, host, 0); err == nil || !strings.Contains(err.Error(), "no version kept below the current version 1") {
		t.Fatalf("second rollback: %v, want no version below 1", err)
	}
	// Forward again, by number.
	if got, err := r.Rollback(ctx, host, 2); err != nil || !sameInfo(got, v2) {
		t.Fatalf("rollback to 2: %+v, %v", got, err)
	}
	wantCurrent(t, r, v2)
	// A new publish takes the next number, whatever is current.
	if _, err := r.Rollback(ctx, host, 1); err != nil {
		t.Fatal(err)
	}
	v3 := publish(t, r, host, 3, 3)
	wantCurrent(t, r, v3)

	hist, err := r.History(ctx, host)
	if err != nil {
		t.Fatal(err)
	}
	type step struct {
		version, from uint64
		cause         string
	}
	want := []step{{1, 0, CausePublish}, {2, 1, CausePublish}, {1, 2, CauseRollback}, {2, 1, CauseRollback}, {1, 2, CauseRollback}, {3, 1, CausePublish}}
	var steps []step
	for i, c := range hist {
		steps = append(steps, step{c.Version, c.From, c.Cause})
		if c.Host != host || c.At.IsZero() || (i > 0 && c.At.Before(hist[i-1].At)) {
			t.Errorf("history[%d] = %+v: wrong host or time", i, c)
		}
	}
	if !slices.Equal(steps, want) {
		t.Errorf("history: %+v, want %+v", steps, want)
	}

	publish(t, r, "db-1", 4, 1)
	list, err := r.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].Host != "db-1" || list[0].Version != 1 || !sameInfo(list[1], v3) {
		t.Fatalf("list: %+v, want db-1 v1 and %s v3", list, host)
	}
}

func TestRegistryRollbackRefused(t *testing.T) {
	r, _ := regTestRegistry(t, RegistryConfig{})
	ctx := testContext(t, 30*time.Second)
	publish(t, r, "web-1", 1, 1)
	publish(t, r, "web-1", 2, 2)
	for _, tc := range []struct {
		name, host string
		to         uint64
		want       string
		is         error
	}{
		{"unknown host", "web-9", 0, `host "web-9"`, ErrNoModel},
		{"version not kept", "web-1", 7, "version 7", ErrNoModel},
		{"already current", "web-1", 2, "version 2 is already current", nil},
		{"invalid host", "web 1", 0, "white space", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := r.Rollback(ctx, tc.host, tc.to)
			if err == nil || !strings.Contains(err.Error(), tc.want) || (tc.is != nil && !errors.Is(err, tc.is)) {
				t.Fatalf("rollback %q to %d: %v, want an error with %q (is %v)", tc.host, tc.to, err, tc.want, tc.is)
			}
			if cur, err := r.Current(ctx, "web-1"); err != nil || cur.Version != 2 {
				t.Fatalf("current after a refused rollback: %+v, %v", cur, err)
			}
		})
	}
}

func TestRegistryPublishInvalid(t *testing.T) {
	r, _ := regTestRegistry(t, RegistryConfig{})
	ctx := testContext(t, 30*time.Second)
	good, _ := regArtifact(t, 1)
	i := bytes.Index(good, []byte(`"model":`)) + 20
	flipped := slices.Clone(good)
	flipped[i] ^= 1 // a byte of the model body: its digest no longer matches
	for _, tc := range []struct {
		name, host string
		data       []byte
		want       string
		is         error
	}{
		{"empty", "web-1", nil, "invalid model artifact", model.ErrEmpty},
		{"not JSON", "web-1", []byte("hello"), "invalid model artifact", model.ErrNotModel},
		{"truncated", "web-1", good[:len(good)/2], "invalid model artifact", model.ErrTruncated},
		{"changed byte", "web-1", flipped, "invalid model artifact", nil},
		{"another format", "web-1", []byte(`{"format":"onnx","version":1,"sha256":"","model":{}}`), "invalid model artifact", model.ErrNotModel},
		{"empty host", "", good, "empty", nil},
		{"host with a space", "web 1", good, "white space", nil},
		{"host with a wildcard", "web.*", good, "wildcard", nil},
		{"host too long", strings.Repeat("h", 256), good, "longer than 255", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := r.Publish(ctx, tc.host, tc.data)
			if err == nil || !strings.Contains(err.Error(), tc.want) || (tc.is != nil && !errors.Is(err, tc.is)) {
				t.Fatalf("publish: %v, want an error with %q (is %v)", err, tc.want, tc.is)
			}
			if tc.host == "web-1" && !strings.Contains(err.Error(), `"web-1"`) {
				t.Errorf("error does not name the host: %v", err)
			}
		})
	}
	// Nothing stored, not even a version number reserved.
	if list, err := r.List(ctx); err != nil || len(list) != 0 {
		t.Fatalf("list after refused publishes: %+v, %v", list, err)
	}
	publish(t, r, "web-1", 1, 1)
}

func TestRegistryCorruptObject(t *testing.T) {
	const host = "db.eu"
	other, _ := regArtifact(t, 99)
	for _, tc := range []struct {
		name    string
		corrupt func(t *testing.T, r *Registry, js jetstream.JetStream, name string, good []byte)
		want    string
	}{
		{"replaced by junk", func(t *testing.T, r *Registry, _ jetstream.JetStream, name string, _ []byte) {
			if _, err := r.objects.PutBytes(testContext(t, 30*time.Second), name, []byte("junk")); err != nil {
				t.Fatal(err)
			}
		}, "not a valid artifact"},
		{"replaced by a truncated artifact", func(t *testing.T, r *Registry, _ jetstream.JetStream, name string, good []byte) {
			if _, err := r.objects.PutBytes(testContext(t, 30*time.Second), name, good[:len(good)-100]); err != nil {
				t.Fatal(err)
			}
		}, "ends early"},
		{"replaced by another valid model", func(t *testing.T, r *Registry, _ jetstream.JetStream, name string, _ []byte) {
			if _, err := r.objects.PutBytes(testContext(t, 30*time.Second), name, other); err != nil {
				t.Fatal(err)
			}
		}, "was published with digest"},
		{"chunk bytes changed in the stream", func(t *testing.T, r *Registry, js jetstream.JetStream, name string, good []byte) {
			ctx := testContext(t, 30*time.Second)
			info, err := r.objects.GetInfo(ctx, name)
			if err != nil {
				t.Fatal(err)
			}
			if info.Chunks != 1 {
				t.Fatalf("object in %d chunks, the test rewrites one", info.Chunks)
			}
			subject := fmt.Sprintf("$O.%s.C.%s", r.cfg.Objects, info.NUID)
			if err := r.stream.Purge(ctx, jetstream.WithPurgeSubject(subject)); err != nil {
				t.Fatal(err)
			}
			bad := slices.Clone(good)
			bad[len(bad)/2] ^= 1
			if _, err := js.Publish(ctx, subject, bad); err != nil {
				t.Fatal(err)
			}
		}, "do not match the object's digest"},
		{"object deleted", func(t *testing.T, r *Registry, _ jetstream.JetStream, name string, _ []byte) {
			if err := r.objects.Delete(testContext(t, 30*time.Second), name); err != nil {
				t.Fatal(err)
			}
		}, "is missing"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, js := regTestRegistry(t, RegistryConfig{})
			ctx := testContext(t, 30*time.Second)
			v1 := publish(t, r, host, 1, 1)
			v2 := publish(t, r, host, 2, 2)
			good, _ := regArtifact(t, 2)
			tc.corrupt(t, r, js, objectName(host, 2), good)

			_, _, err := r.Load(ctx, host)
			if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), tc.want) ||
				!strings.Contains(err.Error(), `host "db.eu" version 2`) {
				t.Fatalf("load of the corrupted version: %v, want ErrCorrupt naming host, version and %q", err, tc.want)
			}
			if _, _, err := r.Get(ctx, host); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("get of the corrupted version: %v, want ErrCorrupt", err)
			}
			// The registry still names version 2 current (a scorer keeps
			// its model); version 1 loads, and a rollback restores it.
			if cur, err := r.Current(ctx, host); err != nil || !sameInfo(cur, v2) {
				t.Fatalf("current: %+v, %v", cur, err)
			}
			if _, info, err := r.LoadVersion(ctx, host, 1); err != nil || !sameInfo(info, v1) {
				t.Fatalf("load version 1: %+v, %v", info, err)
			}
			if got, err := r.Rollback(ctx, host, 0); err != nil || !sameInfo(got, v1) {
				t.Fatalf("rollback: %+v, %v", got, err)
			}
			wantCurrent(t, r, v1)
			// Rolling forward to the corrupted version is refused.
			_, err = r.Rollback(ctx, host, 2)
			if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "refused, version 1 stays current") {
				t.Fatalf("rollback to the corrupted version: %v, want refused", err)
			}
			wantCurrent(t, r, v1)
		})
	}
}

func TestRegistryOddHosts(t *testing.T) {
	r, _ := regTestRegistry(t, RegistryConfig{})
	ctx := testContext(t, 30*time.Second)
	watch, err := r.Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	hosts := []string{"a.b", "a=2Eb", "x/y", "user@host:8080", "[::1]", "ünïcödé.例え", "quote\"s'", "%41", strings.Repeat("h", 255)}
	want := map[string]ModelInfo{}
	for i, h := range hosts {
		want[h] = publish(t, r, h, uint64(i+1), 1)
		c := nextChange(t, watch)
		if !sameInfo(c.ModelInfo, want[h]) {
			t.Errorf("watch after publishing %q: %+v", h, c)
		}
	}
	list, err := r.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != len(hosts) {
		t.Fatalf("list: %d hosts, want %d", len(list), len(hosts))
	}
	for _, info := range list {
		if !sameInfo(info, want[info.Host]) {
			t.Errorf("list: %+v, want %+v", info, want[info.Host])
		}
		wantCurrent(t, r, info)
	}
}

// nextChange waits for the next change on a watch.
func nextChange(t testing.TB, ch <-chan Change) Change {
	t.Helper()
	select {
	case c, ok := <-ch:
		if !ok {
			t.Fatal("watch closed")
		}
		return c
	case <-time.After(10 * time.Second):
		t.Fatal("no change within 10s")
	}
	return Change{}
}

func TestRegistryWatch(t *testing.T) {
	r, _ := regTestRegistry(t, RegistryConfig{})
	publish(t, r, "web-1", 1, 1) // before the watch: not delivered
	ctx, cancel := context.WithCancel(testContext(t, 30*time.Second))
	watch, err := r.Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	v2 := publish(t, r, "web-1", 2, 2)
	d1 := publish(t, r, "db-1", 3, 1)
	v1, err := r.Rollback(ctx, "web-1", 0)
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []Change{
		{ModelInfo: v2, From: 1, Cause: CausePublish},
		{ModelInfo: d1, Cause: CausePublish},
		{ModelInfo: v1, From: 2, Cause: CauseRollback},
	} {
		c := nextChange(t, watch)
		if !sameInfo(c.ModelInfo, want.ModelInfo) || c.From != want.From || c.Cause != want.Cause || c.At.IsZero() {
			t.Errorf("change %d: %+v, want %+v", i, c, want)
		}
	}
	cancel()
	select {
	case c, ok := <-watch:
		if ok {
			t.Fatalf("change after cancel: %+v", c)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("watch not closed 10s after cancel")
	}
}

func TestRegistryPrune(t *testing.T) {
	r, js := regTestRegistry(t, RegistryConfig{Keep: 3})
	ctx := testContext(t, 30*time.Second)
	for v := uint64(1); v <= 5; v++ {
		publish(t, r, "web-1", v, v)
	}
	vs, err := r.Versions(ctx, "web-1")
	if err != nil {
		t.Fatal(err)
	}
	var nums []uint64
	for _, m := range vs {
		nums = append(nums, m.Version)
	}
	if !slices.Equal(nums, []uint64{3, 4, 5}) {
		t.Fatalf("versions kept: %v, want [3 4 5]", nums)
	}
	// The old objects are gone, deletion markers too.
	for v := uint64(1); v <= 2; v++ {
		if _, err := r.objects.GetInfo(ctx, objectName("web-1", v), jetstream.GetObjectInfoShowDeleted()); !errors.Is(err, jetstream.ErrObjectNotFound) {
			t.Errorf("object of version %d: %v, want not found (no deletion marker)", v, err)
		}
		if _, _, err := r.LoadVersion(ctx, "web-1", v); !errors.Is(err, ErrNoModel) || !strings.Contains(err.Error(), "versions kept: [3 4 5]") {
			t.Errorf("load version %d: %v, want ErrNoModel listing the versions kept", v, err)
		}
	}
	st, err := js.Stream(ctx, "OBJ_"+r.cfg.Objects)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx, jetstream.WithSubjectFilter("$O."+r.cfg.Objects+".M.>"))
	if err != nil {
		t.Fatal(err)
	}
	if n := len(info.State.Subjects); n != 3 {
		t.Errorf("%d meta subjects in the objects' stream, want 3 (one per version kept): %v", n, info.State.Subjects)
	}
	// Numbers are never reused, and the new version is current even after
	// a rollback to the oldest kept.
	if _, err := r.Rollback(ctx, "web-1", 3); err != nil {
		t.Fatal(err)
	}
	v6 := publish(t, r, "web-1", 6, 6)
	wantCurrent(t, r, v6)
}

func TestRegistryConcurrentPublish(t *testing.T) {
	srv := runNATS(t)
	const writers, each = 3, 4
	var regs []*Registry
	for range writers {
		_, js := connectJS(t, srv)
		r, err := NewRegistry(testContext(t, 30*time.Second), js, RegistryConfig{Keep: writers * each})
		if err != nil {
			t.Fatal(err)
		}
		regs = append(regs, r)
	}
	var wg sync.WaitGroup
	got := make([][]ModelInfo, writers)
	errs := make([]error, writers)
	for w, r := range regs {
		var arts [][]byte
		for i := range each {
			data, _ := regArtifact(t, uint64(100*w+i))
			arts = append(arts, data)
		}
		wg.Go(func() {
			for _, data := range arts {
				info, err := r.Publish(context.Background(), "web-1", data)
				if err != nil {
					errs[w] = err
					return
				}
				got[w] = append(got[w], info)
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	ctx := testContext(t, 30*time.Second)
	seen := map[uint64]bool{}
	for _, infos := range got {
		for _, info := range infos {
			if seen[info.Version] {
				t.Errorf("version %d handed out twice", info.Version)
			}
			seen[info.Version] = true
			if _, loaded, err := regs[0].LoadVersion(ctx, "web-1", info.Version); err != nil || !sameInfo(loaded, info) {
				t.Errorf("load version %d: %+v, %v; want %+v", info.Version, loaded, err, info)
			}
		}
	}
	if cur, err := regs[0].Current(ctx, "web-1"); err != nil || cur.Version != writers*each {
		t.Errorf("current: %+v, %v; want version %d", cur, err, writers*each)
	}
}

func TestOpenRegistryMissing(t *testing.T) {
	_, js := connectJS(t, runNATS(t))
	_, err := OpenRegistry(testContext(t, 30*time.Second), js, RegistryConfig{})
	if !errors.Is(err, jetstream.ErrBucketNotFound) || !strings.Contains(err.Error(), "dagmm-models") {
		t.Fatalf("open on an empty server: %v, want bucket not found naming dagmm-models", err)
	}
	if _, err := NewRegistry(testContext(t, 30*time.Second), js, RegistryConfig{}); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenRegistry(testContext(t, 30*time.Second), js, RegistryConfig{}); err != nil {
		t.Fatalf("open after create: %v", err)
	}
}

func TestRegistryHistoryDepth(t *testing.T) {
	r, _ := regTestRegistry(t, RegistryConfig{History: 3})
	for v := uint64(1); v <= 5; v++ {
		publish(t, r, "web-1", v, v)
	}
	hist, err := r.History(testContext(t, 30*time.Second), "web-1")
	if err != nil {
		t.Fatal(err)
	}
	var got []uint64
	for _, c := range hist {
		got = append(got, c.Version)
	}
	if !slices.Equal(got, []uint64{3, 4, 5}) {
		t.Fatalf("history with a depth of 3: versions %v, want [3 4 5]", got)
	}
	if _, err := r.History(testContext(t, 30*time.Second), "web-2"); !errors.Is(err, ErrNoModel) || !strings.Contains(err.Error(), `"web-2"`) {
		t.Fatalf("history of a host never published: %v, want ErrNoModel naming it", err)
	}
}
