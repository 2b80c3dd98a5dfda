package dashpic

import (
	"context"
	"testing"

	"github.com/dagmm/dagmm/serve"
)

// StartTest is [Start] for a test: it fails t when the service does not
// start, and closes the service when the test ends, reporting an error of
// Close as a test error.
func StartTest(t testing.TB, modelPath string, edit func(*serve.Config)) *Service {
	t.Helper()
	s, err := Start(context.Background(), modelPath, edit)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	return s
}
