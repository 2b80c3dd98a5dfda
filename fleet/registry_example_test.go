package fleet_test

import (
	"bytes"
	"context"
	"fmt"
	"log"
	"os"

	natstest "github.com/nats-io/nats-server/v2/test"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/dagmm/dagmm/fleet"
	"github.com/dagmm/dagmm/internal/modeltest"
	"github.com/dagmm/dagmm/model"
)

// A trainer publishes two versions of a host's model, a scorer watching the
// registry loads each, and an operator rolls the second back.
func ExampleRegistry() {
	dir, err := os.MkdirTemp("", "dagmm-registry-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	opts := natstest.DefaultTestOptions
	opts.Port, opts.JetStream, opts.StoreDir = -1, true, dir
	srv := natstest.RunServer(&opts)
	defer srv.Shutdown()
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		log.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx := context.Background()

	reg, err := fleet.NewRegistry(ctx, js, fleet.RegistryConfig{Memory: true})
	if err != nil {
		log.Fatal(err)
	}
	watchCtx, stop := context.WithCancel(ctx)
	defer stop()
	changes, err := reg.Watch(watchCtx)
	if err != nil {
		log.Fatal(err)
	}

	for seed := range uint64(2) {
		var artifact bytes.Buffer
		if err := model.Encode(&artifact, modeltest.Metrics4(seed)); err != nil {
			log.Fatal(err)
		}
		if _, err := reg.Publish(ctx, "web-1.example.com", artifact.Bytes()); err != nil {
			log.Fatal(err)
		}
	}
	if _, err := reg.Rollback(ctx, "web-1.example.com", 0); err != nil {
		log.Fatal(err)
	}

	for range 3 {
		c := <-changes
		m, info, err := reg.LoadVersion(ctx, c.Host, c.Version)
		if err != nil {
			log.Printf("keeping the model in use: %v", err)
			continue
		}
		fmt.Printf("%s: %s version %d (was %d), %d features\n", info.Host, c.Cause, info.Version, c.From, len(m.Features))
	}
	// Output:
	// web-1.example.com: publish version 1 (was 0), 4 features
	// web-1.example.com: publish version 2 (was 1), 4 features
	// web-1.example.com: rollback version 1 (was 2), 4 features
}
