package runproof

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"

	"github.com/gowebpki/jcs"
)

// DigestPrefix starts every digest runproof writes.
const DigestPrefix = "sha256:"

// DigestBytes returns "sha256:<hex>" of b.
func DigestBytes(b []byte) string {
	sum := sha256.Sum256(b)
	return DigestPrefix + hex.EncodeToString(sum[:])
}

// Canonical returns the RFC 8785 (JCS) form of v's JSON encoding.
func Canonical(v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("canonical: %w", err)
	}
	return CanonicalJSON(b)
}

// CanonicalJSON returns the RFC 8785 (JCS) form of a JSON text.
func CanonicalJSON(b []byte) ([]byte, error) {
	c, err := jcs.Transform(b)
	if err != nil {
		return nil, fmt.Errorf("canonical: %w", err)
	}
	return c, nil
}

// Digest returns the digest of the canonical JSON form of v.
func Digest(v any) (string, error) {
	c, err := Canonical(v)
	if err != nil {
		return "", err
	}
	return DigestBytes(c), nil
}

// stepHashInput is what a step's content_hash covers: the step's own fields
// and the digest of its content (null when it has none), never the content
// itself, so that content can be redacted while the hash still holds.
type stepHashInput struct {
	StepIndex     int64   `json:"step_index"`
	Timestamp     string  `json:"timestamp"`
	StepType      string  `json:"step_type"`
	InputTokens   int64   `json:"input_tokens"`
	OutputTokens  int64   `json:"output_tokens"`
	CostCents     float64 `json:"cost_cents"`
	DurationMs    float64 `json:"duration_ms"`
	ContentDigest *string `json:"content_digest"`
}

// StepContentHash computes a step's content_hash from its fields and its
// ContentDigest. See docs/integrity.md for the exact recipe.
func StepContentHash(s Step) (string, error) {
	in := stepHashInput{
		StepIndex:    s.Index,
		Timestamp:    FormatTime(s.Timestamp),
		StepType:     s.StepType,
		InputTokens:  s.InputTokens,
		OutputTokens: s.OutputTokens,
		CostCents:    Cents(s.CostMicrocents),
		DurationMs:   Millis(s.DurationMicros),
	}
	if s.ContentDigest != "" {
		in.ContentDigest = &s.ContentDigest
	}
	return Digest(in)
}
