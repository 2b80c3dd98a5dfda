package model

import (
	"errors"
	"strconv"
)

// Sentinel errors. Every error this package returns for a bad artifact or a
// bad sample matches one of them with [errors.Is], and its message says what
// exactly is wrong.
var (
	// ErrEmpty: the artifact has no content.
	ErrEmpty = errors.New("model: empty artifact")
	// ErrTruncated: the artifact ends before its JSON document does.
	ErrTruncated = errors.New("model: artifact truncated")
	// ErrNotModel: the artifact is not a dagmm model (not JSON, or another format).
	ErrNotModel = errors.New("model: not a dagmm model")
	// ErrVersion: the artifact was written in a format version this build does not read.
	ErrVersion = errors.New("model: unsupported artifact version")
	// ErrChecksum: the model bytes do not match the recorded SHA-256 digest.
	ErrChecksum = errors.New("model: checksum mismatch: the artifact was edited or corrupted")
	// ErrInvalid: the model is inconsistent; the error is a [*ValidationError].
	ErrInvalid = errors.New("model: invalid model")
	// ErrInput: a sample cannot be scored; the error is an [*InputError].
	ErrInput = errors.New("model: invalid input")
)

// ValidationError reports the first inconsistency [Model.Validate] found.
// It matches [ErrInvalid] with [errors.Is].
type ValidationError struct {
	// Field names where the problem is, e.g. "encoder layer 1" or "gmm sigma 2".
	Field string
	// Problem says what is wrong with it, e.g. "w has 1200 values, want 1800 (in 60 × out 30)".
	Problem string
}

// Error returns "model: <field>: <problem>".
func (e *ValidationError) Error() string { return "model: " + e.Field + ": " + e.Problem }

// Is reports whether target is [ErrInvalid].
func (e *ValidationError) Is(target error) bool { return target == ErrInvalid }

// InputError reports a sample the [Scorer] refuses. It matches [ErrInput]
// with [errors.Is].
type InputError struct {
	// Sample is the index of the sample in the batch (0 for [Scorer.Score]),
	// or -1 when the problem is the batch as a whole.
	Sample int
	// Feature is the name of the offending feature, or "" when the problem is
	// not one feature's value.
	Feature string
	// Problem says what is wrong, e.g. "value is NaN".
	Problem string
}

// Error returns "model: sample <i>: feature <name>: <problem>", leaving out
// the parts that do not apply.
func (e *InputError) Error() string {
	s := "model: "
	if e.Sample >= 0 {
		s += "sample " + strconv.Itoa(e.Sample) + ": "
	}
	if e.Feature != "" {
		s += "feature " + strconv.Quote(e.Feature) + ": "
	}
	return s + e.Problem
}

// Is reports whether target is [ErrInput].
func (e *InputError) Is(target error) bool { return target == ErrInput }
