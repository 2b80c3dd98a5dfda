package fleet

import (
	"time"

	"fmt"
	"testing"
)

// BenchmarkRegistry measures the registry's calls on one embedded server
// with a file store, client and server in one process: what a trainer pays
// to publish a four-metric model, and a scorer to look up a host's current
// version and to load it (read, decode, validate).
func BenchmarkRegistry(b *testing.B) {
	r, _ := regTestRegistry(b, RegistryConfig{})
	ctx := testContext(b, 30*time.Second)
	data, _ := regArtifact(b, 1)
	const hosts = 100
	for i := range hosts {
		if _, err := r.Publish(ctx, fmt.Sprintf("host-%d", i), data); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("Publish", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		i := 0
		for b.Loop() {
			if _, err := r.Publish(ctx, fmt.Sprintf("host-%d", i%hosts), data); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
	b.Run("Current", func(b *testing.B) {
		i := 0
		for b.Loop() {
			if _, err := r.Current(ctx, fmt.Sprintf("host-%d", i%hosts)); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
	b.Run("Load", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		i := 0
		for b.Loop() {
			if _, _, err := r.Load(ctx, fmt.Sprintf("host-%d", i%hosts)); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
}
