//go:build race

package storetest

// defaultOps is the isolation property test's length under the race
// detector, which slows SQLite (transpiled C) down about tenfold.
const defaultOps = 1000
