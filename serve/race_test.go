//go:build race

package serve

// raceEnabled is set when the tests run under the race detector, whose
// shadow memory makes memory figures meaningless.
const raceEnabled = true
