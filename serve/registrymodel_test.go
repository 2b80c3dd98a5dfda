package serve

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/dagmm/dagmm/fleet"
	"github.com/dagmm/dagmm/internal/modeltest"
)

// TestRegistryModel serves one registry key's model to every host and
// follows its publishes and rollbacks while serving; a corrupted version
// leaves the serving one in place.
func TestRegistryModel(t *testing.T) {
	e := newFleetEnv(t)
	ctx := fleetCtx(t)
	if _, err := NewRegistryModel(ctx, e.reg, "prod", "dagmm"); !errors.Is(err, fleet.ErrNoModel) {
		t.Fatalf("NewRegistryModel without a model: %v, want ErrNoModel", err)
	}
	m1, m2 := modeltest.Metrics4(1), modeltest.Metrics4(2)
	e.publish(t, "prod", m1)
	src, err := NewRegistryModel(ctx, e.reg, "prod", "dagmm")
	if err != nil {
		t.Fatal(err)
	}
	cfg := testConfig("")
	cfg.NATS.Disabled = true
	r := start(t, cfg, WithModelSource(src))
	version := func() (string, string) {
		_, body := r.get(t, "/v1/model")
		var info struct{ Version, Origin string }
		if err := json.Unmarshal(body, &info); err != nil {
			t.Fatalf("GET /v1/model: %v: %s", err, body)
		}
		return info.Version, info.Origin
	}
	waitFor := func(want string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			v, origin := version()
			if v == want {
				if origin != "prod" { // GET /v1/model shows the origin's base name
					t.Errorf("origin %q, want prod", origin)
				}
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("serving version %s after 10s, want %s", v, want)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitFor("1")
	e.publish(t, "other", m2) // another key changes nothing
	e.publish(t, "prod", m2)
	waitFor("2")
	if l, _ := src.ForHost("web-1"); l.Version != "2" {
		t.Errorf("ForHost(web-1) serves version %s, want 2", l.Version)
	}
	if _, err := e.reg.Rollback(ctx, "prod", 0); err != nil {
		t.Fatal(err)
	}
	waitFor("1")
	e.publish(t, "prod", m2) // version 3
	waitFor("3")
	e.corrupt(t, "prod", 3, m1)
	if l, err := src.Reload(ctx); err == nil || l.Version != "3" {
		t.Errorf("Reload of a corrupted version: %v, serving %s; want an error and version 3", err, l.Version)
	}
}

// TestRegistryModelChangeBeforeWatch: a version published after the model
// was loaded but before Watch started (a service's start) is not lost: the
// registry's watch sees only later changes, so Watch asks for a reload
// once at its start.
func TestRegistryModelChangeBeforeWatch(t *testing.T) {
	e := newFleetEnv(t)
	ctx := fleetCtx(t)
	e.publish(t, "prod", modeltest.Metrics4(1))
	src, err := NewRegistryModel(ctx, e.reg, "prod", "dagmm")
	if err != nil {
		t.Fatal(err)
	}
	e.publish(t, "prod", modeltest.Metrics4(2))
	changed := make(chan struct{}, 1)
	wctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- src.Watch(wctx, changed) }()
	defer func() {
		cancel()
		<-done
	}()
	select {
	case <-changed:
	case err := <-done:
		t.Fatalf("Watch ended: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("no reload asked for a version published before the watch")
	}
	if l, err := src.Reload(ctx); err != nil || l.Version != "2" {
		t.Errorf("Reload = version %v, %v; want 2", l.Version, err)
	}
}

// TestCachedModel checks the look-up the registry's scorers make: a hit
// moves the model to the front of the cache, but not again within
// promoteEvery, so eviction follows use to within that.
func TestCachedModel(t *testing.T) {
	c, err := lru.New[string, *Loaded](2)
	if err != nil {
		t.Fatal(err)
	}
	x, y := &Loaded{Name: "x"}, &Loaded{Name: "y"}
	c.Add("x", x)
	c.Add("y", y)
	if l, ok := CachedModel(c, "x"); !ok || l != x {
		t.Fatalf("CachedModel(x) = %v, %v", l, ok)
	}
	if _, ok := CachedModel(c, "nobody"); ok {
		t.Fatal("a host not in the cache was found")
	}
	CachedModel(c, "y")
	CachedModel(c, "x") // within promoteEvery: x stays behind y
	c.Add("z", &Loaded{Name: "z"})
	if c.Contains("x") || !c.Contains("y") {
		t.Fatalf("after a second look-up within promoteEvery, adding z kept %v; want y and z", c.Keys())
	}
	y.promoted.Add(-int64(2 * promoteEvery)) // y's last move was long ago
	CachedModel(c, "y")
	c.Add("w", &Loaded{Name: "w"})
	if !c.Contains("y") || c.Contains("z") {
		t.Fatalf("after a look-up more than promoteEvery after the last, adding w kept %v; want y and w", c.Keys())
	}
}
