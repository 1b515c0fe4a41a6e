// Package evidencetest checks bundles for tests of any package: their
// canonical form in memory, and their content_hash and evidence_digest
// recomputed from their JSON alone by the recipe of docs/bundles.md. Only
// tests import it; the offline verifier (package verify) makes its own,
// streaming, checks, which its tests compare with these.
package evidencetest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/runproof/runproof/internal/evidence"
	"github.com/runproof/runproof/internal/runproof"
)

// Canonical returns the RFC 8785 (JCS) form of a bundle's JSON, in memory.
func Canonical(v any) ([]byte, error) {
	var buf bytes.Buffer
	err := evidence.WriteCanonical(&buf, v)
	return buf.Bytes(), err
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
// content_hash and without the SOC 2 members (evidence.SOC2Members).
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
	for _, name := range evidence.SOC2Members {
		delete(members, name)
	}
	return compareDigest(members, "evidence_digest", claimed)
}

func parseBundle(data []byte) (map[string]json.RawMessage, error) {
	// The canonicalizer refuses what JCS cannot hash: invalid JSON,
	// duplicate member names, invalid UTF-8.
	if _, err := runproof.CanonicalJSON(data); err != nil {
		return nil, fmt.Errorf("the bundle is not valid JSON: %w", err)
	}
	var members map[string]json.RawMessage
	if err := json.Unmarshal(data, &members); err != nil || members == nil {
		return nil, errors.New("the bundle is not a JSON object")
	}
	return members, nil
}

func stringMember(members map[string]json.RawMessage, name string) (string, error) {
	var s string
	if raw, ok := members[name]; !ok || json.Unmarshal(raw, &s) != nil || s == "" {
		return "", fmt.Errorf("the bundle has no %s", name)
	}
	return s, nil
}

func compareDigest(members map[string]json.RawMessage, name, claimed string) error {
	got, err := runproof.Digest(members)
	if err != nil {
		return err
	}
	if got != claimed {
		return fmt.Errorf("%s does not match: the bundle says %s, its content gives %s", name, claimed, got)
	}
	return nil
}
