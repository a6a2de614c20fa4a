//go:build !race

package storetest

// defaultOps is the isolation property test's length.
const defaultOps = 3000
