package export

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"hash"
	"io"
)

// Summary describes an export file: its lines (records), bytes and SHA-256.
type Summary struct {
	Records int64  `json:"records"`
	Bytes   int64  `json:"bytes"`
	SHA256  string `json:"sha256"` // lowercase hex
	// Partial is true if the data does not end with a newline: its last
	// line was cut (it is not counted in Records).
	Partial bool `json:"partial,omitempty"`
}

// Tally is an io.Writer that sums up what is written through it: lines,
// bytes and SHA-256. Write an export to io.MultiWriter(file, tally) to
// know what the file holds without reading it again. The zero Tally is not
// ready: use NewTally.
type Tally struct {
	h     hash.Hash
	lines int64
	bytes int64
	last  byte
}

// NewTally returns an empty Tally.
func NewTally() *Tally { return &Tally{h: sha256.New()} }

// Write adds p; it never fails.
func (t *Tally) Write(p []byte) (int, error) {
	t.h.Write(p)
	t.lines += int64(bytes.Count(p, []byte{'\n'}))
	t.bytes += int64(len(p))
	if len(p) > 0 {
		t.last = p[len(p)-1]
	}
	return len(p), nil
}

// Summary returns the totals of what was written so far.
func (t *Tally) Summary() Summary {
	return Summary{
		Records: t.lines,
		Bytes:   t.bytes,
		SHA256:  hex.EncodeToString(t.h.Sum(nil)),
		Partial: t.bytes > 0 && t.last != '\n',
	}
}

// Summarize reads r to its end and sums it up, as a Tally would have.
func Summarize(r io.Reader) (Summary, error) {
	t := NewTally()
	if _, err := io.Copy(t, r); err != nil {
		return Summary{}, err
	}
	return t.Summary(), nil
}
