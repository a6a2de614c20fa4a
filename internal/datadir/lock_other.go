//go:build !unix

package datadir

import (
	"errors"
	"os"
)

var errWouldBlock = errors.New("would block")

// lockFile does not lock on this platform: one server per data directory
// is not enforced here.
func lockFile(*os.File) error { return nil }
