package evidence

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io"

	"github.com/runproof/runproof/internal/runproof"
)

// WriteCanonical writes the RFC 8785 (JCS) form of a bundle's JSON to w.
//
// The reference is runproof.Canonical (encoding/json, then the JCS
// canonicalizer). The steps of an evidence or SOC 2 bundle, which may be
// millions, do not go through it: their list holds them in canonical form
// already (see StepList), so the rest of the bundle goes through the
// reference with an empty list, and the list is copied in its place. Tests
// and a fuzz target check the result against a second JCS library.
func WriteCanonical(w io.Writer, v any) error {
	steps, rest := withoutSteps(v)
	c, err := runproof.Canonical(rest)
	if err != nil {
		return err
	}
	if steps.Len() == 0 {
		_, err = w.Write(c)
		return err
	}
	const empty = `"steps":[]` // a quote inside a string is escaped: this is the member
	i := bytes.Index(c, []byte(empty))
	if i < 0 || bytes.Count(c, []byte(empty)) != 1 {
		return errSpliceSteps
	}
	i += len(empty) - 1 // at the closing bracket
	if _, err := w.Write(c[:i]); err != nil {
		return err
	}
	if _, err := io.Copy(w, steps.spool.Reader()); err != nil {
		return err
	}
	_, err = w.Write(c[i:])
	return err
}

// withoutSteps returns a bundle's steps and a copy of the bundle without
// them; other values as they are, with no steps.
func withoutSteps(v any) (StepList, any) {
	switch b := v.(type) {
	case EvidenceBundle:
		return withoutSteps(&b)
	case SOC2Bundle:
		return withoutSteps(&b)
	case *EvidenceBundle:
		if b != nil {
			rest := *b
			rest.Steps = StepList{}
			return b.Steps, &rest
		}
	case *SOC2Bundle:
		if b != nil {
			rest := *b
			rest.Steps = StepList{}
			return b.Steps, &rest
		}
	}
	return StepList{}, v
}

// errSpliceSteps is an internal error: the canonical form of a bundle
// without its steps must hold one empty steps member.
var errSpliceSteps = errors.New(`evidence: the bundle's canonical form does not hold one "steps":[]`)

// digest returns the digest of v's canonical form. A bundle's content_hash
// must be empty when it is called, so that the member is absent.
func digest(v any) (string, error) {
	h := sha256.New()
	if err := WriteCanonical(h, v); err != nil {
		return "", err
	}
	return runproof.DigestOf(h), nil
}

// SetContentHash sets b's content_hash: the digest of the RFC 8785 form of
// the bundle without its content_hash member.
func (b *EvidenceBundle) SetContentHash() (err error) {
	b.ContentHash = ""
	b.ContentHash, err = digest(b)
	return err
}

// setContentHash sets the SOC 2 bundle's content_hash alone.
func (b *SOC2Bundle) setContentHash() (err error) {
	b.ContentHash = ""
	b.ContentHash, err = digest(b)
	return err
}

// SetContentHash sets the debrief's content_hash.
func (b *ExecutiveDebriefBundle) SetContentHash() (err error) {
	b.ContentHash = ""
	b.ContentHash, err = digest(b)
	return err
}
