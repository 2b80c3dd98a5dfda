// Package fleet keeps a model per host on NATS JetStream: each host's
// recent samples in a history stream, retraining jobs on a work-queue
// stream shared by any number of trainers, the models in a registry
// (an Object Store bucket, with each host's current version and its
// history in a KV bucket, so a bad model is rolled back in one step), and
// operators' false-alarm marks in a KV bucket.
//
// It imports model and NATS, never Gorgonia: a trainer process wires a
// training function into [Trainer] in cmd/dagmm.
package fleet

import (
	"context"
	"errors"
	"time"
)

// ErrNoModel is returned, wrapped, when a host has no model in the registry.
var ErrNoModel = errors.New("fleet: no model")

// ModelInfo describes one version of one host's model in the registry.
type ModelInfo struct {
	Host    string    `json:"host"`
	Version uint64    `json:"version"` // 1, 2, ... per host
	Digest  string    `json:"digest"`  // hex SHA-256 from model.DecodeDigest
	Size    int64     `json:"size"`    // artifact bytes
	Created time.Time `json:"created"`
	// Since is when this version became the host's current one (its
	// publish, or a rollback to it); set by [Store.Current] only.
	Since time.Time `json:"since,omitzero"`
}

// Age returns how long the host has been scored by this version: since
// it became current, or since it was created when that is not known.
func (m ModelInfo) Age(now time.Time) time.Duration {
	if m.Since.After(m.Created) {
		return now.Sub(m.Since)
	}
	return now.Sub(m.Created)
}

// Store is where trainers publish models and the scheduler learns their
// age: the registry implements it.
type Store interface {
	// Publish validates artifact (model.DecodeDigest), stores it as the
	// host's next version and makes it current.
	Publish(ctx context.Context, host string, artifact []byte) (ModelInfo, error)
	// Current returns the host's current version, or an error wrapping
	// ErrNoModel.
	Current(ctx context.Context, host string) (ModelInfo, error)
}

// FalseAlarms tells a trainer which of a host's samples an operator marked
// as false alarms: they stay in its next training window even though dagmm
// flagged them.
type FalseAlarms interface {
	// Marked returns the sample times (the events' ts) of the host's
	// false-alarm marks.
	Marked(ctx context.Context, host string) ([]time.Time, error)
}
