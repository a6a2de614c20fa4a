package server_test

import (
	"os"
	"testing"
)

// TestMain runs the tests, or, started again by BenchmarkNoisyNeighbour
// with noisyLoadEnv set, that benchmark's load generator instead (a
// separate process, so that the clients do not share the server's
// runtime).
func TestMain(m *testing.M) {
	if os.Getenv(noisyLoadEnv) == "1" {
		os.Exit(noisyLoadMain(os.Stdin, os.Stdout))
	}
	os.Exit(m.Run())
}
