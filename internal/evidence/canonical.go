package evidence

import (
	"bytes"
	"encoding/json"

	"github.com/runproof/runproof/internal/runproof"
)

// Canonical returns the RFC 8785 (JCS) form of a bundle's JSON.
//
// The reference is runproof.Canonical (encoding/json, then the JCS
// canonicalizer). An EvidenceBundle — the one that holds millions of steps —
// takes a shortcut: its structs declare their fields in JCS order and hold
// only values whose encoding/json form is already canonical (times as
// strings, no maps), so encoding/json without HTML escaping writes the
// canonical bytes in one pass. Whatever the shortcut cannot vouch for —
// U+2028, U+2029 or invalid UTF-8, which encoding/json escapes; content that
// is not canonical; integers beyond 2^53 — goes through the reference
// instead. Tests and a fuzz target check the shortcut against the reference
// and a second JCS library.
func Canonical(v any) ([]byte, error) {
	switch b := v.(type) {
	case EvidenceBundle:
		return canonicalEvidence(&b)
	case *EvidenceBundle:
		return canonicalEvidence(b)
	}
	return runproof.Canonical(v)
}

func canonicalEvidence(b *EvidenceBundle) ([]byte, error) {
	var buf bytes.Buffer
	buf.Grow(4096 + 256*len(b.Steps))
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(b); err != nil {
		return nil, err
	}
	out := bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	if !directlyCanonical(b, out) {
		return runproof.CanonicalJSON(out)
	}
	return out, nil
}

// directlyCanonical reports whether encoding/json's output of b is certain
// to be its RFC 8785 form.
func directlyCanonical(b *EvidenceBundle, out []byte) bool {
	const maxExact = 1 << 53 // JCS reads numbers as IEEE doubles
	// encoding/json escapes U+2028, U+2029 and invalid UTF-8 (as U+FFFD);
	// RFC 8785 writes them as they are.
	if bytes.Contains(out, []byte(`\u202`)) || bytes.Contains(out, []byte(`\ufffd`)) || b.TotalTokens < 0 || b.TotalTokens > maxExact || b.TotalSteps > maxExact {
		return false
	}
	for i := range b.Steps {
		s := &b.Steps[i]
		if s.StepIndex < 0 || s.StepIndex > maxExact || s.Tokens < 0 || s.Tokens > maxExact ||
			s.InputTokens < 0 || s.OutputTokens < 0 {
			return false
		}
		if s.Content != nil {
			c, err := runproof.CanonicalJSON(s.Content)
			if err != nil || !bytes.Equal(c, s.Content) {
				return false
			}
		}
	}
	return true
}

// digest returns the digest of v's canonical form. A bundle's content_hash
// must be empty when it is called, so that the member is absent.
func digest(v any) (string, error) {
	c, err := Canonical(v)
	if err != nil {
		return "", err
	}
	return runproof.DigestBytes(c), nil
}

// Seal sets b's content_hash: the digest of the RFC 8785 form of the bundle
// without its content_hash member.
func (b *EvidenceBundle) Seal() (err error) {
	b.ContentHash = ""
	b.ContentHash, err = digest(b)
	return err
}

// Seal sets the SOC 2 bundle's evidence_digest (over its evidence members)
// and then its content_hash (over every member but content_hash). Call it
// again after changing any member.
func (b *SOC2Bundle) Seal() (err error) {
	b.ContentHash = ""
	if b.EvidenceDigest, err = digest(&b.EvidenceBundle); err != nil {
		return err
	}
	b.ContentHash, err = digest(b)
	return err
}

// Seal sets the debrief's content_hash.
func (b *ExecutiveDebriefBundle) Seal() (err error) {
	b.ContentHash = ""
	b.ContentHash, err = digest(b)
	return err
}

// VerifyContentHash recomputes a bundle's content_hash from its JSON bytes
// alone, whatever the bundle type: it parses the JSON, removes the
// content_hash member, takes the RFC 8785 form and compares its digest with
// the content_hash written in the bundle.
func VerifyContentHash(data []byte) error {
	members, err := parseBundle(data)
	if err != nil {
		return err
	}
	claimed, err := stringMember(members, "content_hash")
	if err != nil {
		return err
	}
	delete(members, "content_hash")
	return compareDigest(members, "content_hash", claimed)
}

// VerifyEvidenceDigest recomputes a SOC 2 bundle's evidence_digest from its
// JSON bytes: the digest of the RFC 8785 form of the bundle without
// content_hash and without the SOC 2 members (evidence_digest,
// control_mappings, attestation_statement, compliance_period_start,
// compliance_period_end, auditor_notes, review_status, reviewed_by,
// reviewed_at, criteria_covered).
func VerifyEvidenceDigest(data []byte) error {
	members, err := parseBundle(data)
	if err != nil {
		return err
	}
	claimed, err := stringMember(members, "evidence_digest")
	if err != nil {
		return err
	}
	delete(members, "content_hash")
	for _, name := range SOC2Members {
		delete(members, name)
	}
	return compareDigest(members, "evidence_digest", claimed)
}

func parseBundle(data []byte) (map[string]json.RawMessage, error) {
	// The canonicalizer refuses what JCS cannot hash: invalid JSON,
	// duplicate member names, invalid UTF-8.
	if _, err := runproof.CanonicalJSON(data); err != nil {
		return nil, runproof.Errorf(runproof.EINVALID, "the bundle is not valid JSON: %v", err)
	}
	var members map[string]json.RawMessage
	if err := json.Unmarshal(data, &members); err != nil || members == nil {
		return nil, runproof.Errorf(runproof.EINVALID, "the bundle is not a JSON object")
	}
	return members, nil
}

func stringMember(members map[string]json.RawMessage, name string) (string, error) {
	var s string
	if raw, ok := members[name]; !ok || json.Unmarshal(raw, &s) != nil || s == "" {
		return "", runproof.Errorf(runproof.EINVALID, "the bundle has no %s", name)
	}
	return s, nil
}

func compareDigest(members map[string]json.RawMessage, name, claimed string) error {
	got, err := digest(members)
	if err != nil {
		return err
	}
	if got != claimed {
		return runproof.Errorf(runproof.EINVALID, "%s does not match: the bundle says %s, its content gives %s", name, claimed, got)
	}
	return nil
}
