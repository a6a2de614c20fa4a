//go:build !unix

package sqlite

import (
	"errors"
	"os"
)

var errWouldBlock = errors.New("would block")

// lockFile does not lock on this platform: the data directory's single
// owner is not enforced here.
func lockFile(*os.File) error { return nil }
