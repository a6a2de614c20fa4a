package export

import (
	"errors"
	"fmt"
	"strings"

	"github.com/bulkhead-dev/bulkhead/store"
)

// ErrInvalidPosition reports a resume position that is not
// "<collection>/<id>" with a valid collection name and record id.
var ErrInvalidPosition = errors.New("invalid export position")

// Position is where an export resumes: after the record Collection/ID
// (which need not exist any more). The zero Position is the start.
type Position struct {
	Collection string
	ID         string
}

// IsZero reports whether p is the start of the export.
func (p Position) IsZero() bool { return p == Position{} }

// String returns "<collection>/<id>", the form ParsePosition reads, or ""
// for the start.
func (p Position) String() string {
	if p.IsZero() {
		return ""
	}
	return p.Collection + "/" + p.ID
}

// Of returns the position of rec: an export resumed there starts with the
// record after it.
func Of(rec store.Record) Position { return Position{Collection: rec.Collection, ID: rec.ID} }

// ParsePosition reads "<collection>/<id>" (the empty string is the start).
// Any other form fails with an error wrapping ErrInvalidPosition that says
// what is wrong.
func ParsePosition(s string) (Position, error) {
	if s == "" {
		return Position{}, nil
	}
	c, id, ok := strings.Cut(s, "/")
	if !ok {
		return Position{}, fmt.Errorf("%w: want <collection>/<id>, the collection and id of the last record received", ErrInvalidPosition)
	}
	if err := store.ValidCollection(c); err != nil {
		return Position{}, fmt.Errorf("%w: %v", ErrInvalidPosition, err)
	}
	if err := store.ValidRecordID(id); err != nil {
		return Position{}, fmt.Errorf("%w: %v", ErrInvalidPosition, err)
	}
	return Position{Collection: c, ID: id}, nil
}
