// Package jsonr writes bundles as canonical JSON (RFC 8785) over an
// io.Writer, with no trailing newline, so that a file holding one bundle
// hashes cleanly. The file's digest is not the bundle's content_hash,
// which is taken over the bundle without its content_hash member
// (docs/bundles.md, "content_hash"). It performs no I/O of its own beyond
// the writer.
package jsonr

import (
	"io"

	"github.com/runproof/runproof/internal/evidence"
)

// Encoder writes bundles to a writer. After the first error every call
// returns it.
type Encoder struct {
	w   io.Writer
	err error
}

// NewEncoder returns an Encoder writing to w.
func NewEncoder(w io.Writer) *Encoder { return &Encoder{w: w} }

// Encode writes the canonical JSON of bundle, followed by nothing, its
// steps streamed from their list. A file should hold one bundle: two
// Encode calls write two values back to back.
func (e *Encoder) Encode(bundle any) error {
	if e.err == nil {
		e.err = evidence.WriteCanonical(e.w, bundle)
	}
	return e.err
}

// Close returns the first error of the encoder. It does not close the writer.
func (e *Encoder) Close() error { return e.err }
