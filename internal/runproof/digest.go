package runproof

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"strconv"

	"github.com/go-json-experiment/json/jsontext"
)

// DigestPrefix starts every digest runproof writes.
const DigestPrefix = "sha256:"

// DigestBytes returns "sha256:<hex>" of b.
func DigestBytes(b []byte) string {
	sum := sha256.Sum256(b)
	return DigestPrefix + hex.EncodeToString(sum[:])
}

// DigestOf returns "sha256:<hex>" of what h, a SHA-256, has hashed.
func DigestOf(h hash.Hash) string { return DigestPrefix + hex.EncodeToString(h.Sum(nil)) }

// Canonical returns the RFC 8785 (JCS) form of v's JSON encoding.
func Canonical(v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("canonical: %w", err)
	}
	return CanonicalJSON(b)
}

// CanonicalJSON returns the RFC 8785 (JCS) form of a JSON text, in a new
// slice. It uses the canonicalizer of the JSON v2 prototype (jsontext),
// which tests check against a second, independent JCS implementation.
func CanonicalJSON(b []byte) ([]byte, error) {
	v := jsontext.Value(bytes.Clone(b))
	if err := v.Canonicalize(); err != nil {
		return nil, fmt.Errorf("canonical: %w", err)
	}
	return v, nil
}

// Digest returns the digest of the canonical JSON form of v.
func Digest(v any) (string, error) {
	c, err := Canonical(v)
	if err != nil {
		return "", err
	}
	return DigestBytes(c), nil
}

// StepContentHash computes a step's content_hash: the digest of the RFC 8785
// form of the step's own fields and the digest of its content (null when it
// has none), never the content itself, so that content can be redacted
// while the hash still holds. docs/integrity.md gives the recipe:
//
//	{"content_digest":…,"cost_cents":…,"duration_ms":…,"input_tokens":…,
//	 "output_tokens":…,"step_index":…,"step_type":…,"timestamp":…}
//
// Steps are hashed on every ingest, so the canonical bytes are written
// directly (members already in JCS order); a test and a fuzz target check
// that they equal what the JCS library makes of the same object.
func StepContentHash(s Step) string {
	return DigestBytes(stepHashBytes(s, make([]byte, 0, 256)))
}

func stepHashBytes(s Step, b []byte) []byte {
	b = append(b, `{"content_digest":`...)
	if s.ContentDigest == "" {
		b = append(b, "null"...)
	} else {
		b = AppendJCSString(b, s.ContentDigest)
	}
	b = append(b, `,"cost_cents":`...)
	b = strconv.AppendFloat(b, Cents(s.CostMicrocents), 'f', -1, 64)
	b = append(b, `,"duration_ms":`...)
	b = strconv.AppendFloat(b, Millis(s.DurationMicros), 'f', -1, 64)
	b = append(b, `,"input_tokens":`...)
	b = strconv.AppendInt(b, s.InputTokens, 10)
	b = append(b, `,"output_tokens":`...)
	b = strconv.AppendInt(b, s.OutputTokens, 10)
	b = append(b, `,"step_index":`...)
	b = strconv.AppendInt(b, s.Index, 10)
	b = append(b, `,"step_type":`...)
	b = AppendJCSString(b, s.StepType)
	b = append(b, `,"timestamp":"`...) // RFC 3339 needs no escaping
	b = Timestamp(s.Timestamp).AppendFormat(b, TimeFormat)
	return append(b, '"', '}')
}

// AppendJCSString writes s as RFC 8785 does (ECMAScript JSON.stringify):
// only '"', '\\' and control characters are escaped, the short forms where
// they exist, otherwise \u00xx in lowercase hex. s must be valid UTF-8
// (Canonical replaces what is not). Values of at most 2^53 and at least
// 1e-6 (all the fixed-point values here) print without exponent, which is
// what strconv's 'f' format gives.
func AppendJCSString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c == '\b':
			b = append(b, '\\', 'b')
		case c == '\f':
			b = append(b, '\\', 'f')
		case c == '\n':
			b = append(b, '\\', 'n')
		case c == '\r':
			b = append(b, '\\', 'r')
		case c == '\t':
			b = append(b, '\\', 't')
		case c < 0x20:
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		default:
			b = append(b, c)
		}
	}
	return append(b, '"')
}
