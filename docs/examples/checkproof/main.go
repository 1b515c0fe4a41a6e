// Command checkproof checks a runproof export ledger proof (proof.json)
// with the packages of the Go checksum database and the standard library
// only: it needs nothing of runproof, and no access to its server.
//
// Usage:
//
//	go run ./docs/examples/checkproof -key VERIFIER_KEY proof.json [ARTIFACT]
//	go run ./docs/examples/checkproof -pem pub.pem proof.json [ARTIFACT]
//
// It opens the signed checkpoint with the published key (a note verifier
// key, or the PEM public key of GET /api/v1/signing-keys), checks
// that the leaf is in the tree the checkpoint signs, and, given the
// artifact, that its SHA-256 is the checksum the leaf records. It prints
// one line and exits 0 only when everything holds.
package main

import (
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// proof holds the members of proof.json this check needs.
type proof struct {
	ExportID    string      `json:"export_id"`
	Index       int64       `json:"index"`
	Leaf        []byte      `json:"leaf"` // base64 in JSON
	RecordProof []tlog.Hash `json:"record_proof"`
	Checkpoint  string      `json:"checkpoint"`
	VerifierKey string      `json:"verifier_key"`
}

// leaf holds the members of the leaf this check reports.
type leaf struct {
	Type     string `json:"type"`
	ExportID string `json:"export_id"`
	TenantID string `json:"tenant_id"`
	Status   string `json:"status"`
	BundleID string `json:"bundle_id"`
	Checksum string `json:"checksum"`
}

func main() {
	key := flag.String("key", "", "the published verifier key of the ledger (without it or -pem, the key in proof.json is used, which shows the proof is intact but not who signed it)")
	pemFile := flag.String("pem", "", "the published Ed25519 public key, PEM")
	flag.Parse()
	if flag.NArg() < 1 || flag.NArg() > 2 {
		fmt.Fprintln(os.Stderr, "usage: checkproof [-key VERIFIER_KEY | -pem PUB.pem] proof.json [ARTIFACT]")
		os.Exit(2)
	}
	msg, err := check(*key, *pemFile, flag.Arg(0), flag.Arg(1))
	if err != nil {
		fmt.Fprintln(os.Stderr, "checkproof: FAILED:", err)
		os.Exit(1)
	}
	fmt.Println(msg)
}

func check(key, pemFile, proofPath, artifactPath string) (string, error) {
	b, err := os.ReadFile(proofPath)
	if err != nil {
		return "", err
	}
	var p proof
	if err := json.Unmarshal(b, &p); err != nil {
		return "", fmt.Errorf("%s: %w", proofPath, err)
	}
	warning := ""
	if pemFile != "" {
		if key, err = pemVerifierKey(pemFile, p.Checkpoint); err != nil {
			return "", err
		}
	}
	if key == "" {
		key, warning = p.VerifierKey, " (signature checked with the key given in proof.json: compare it with the published key)"
	}

	// 1. The checkpoint is signed by the ledger's key.
	v, err := note.NewVerifier(key)
	if err != nil {
		return "", fmt.Errorf("verifier key: %w", err)
	}
	n, err := note.Open([]byte(p.Checkpoint), note.VerifierList(v))
	if err != nil {
		return "", fmt.Errorf("checkpoint: %w", err)
	}
	tree, err := tlog.ParseTree([]byte(n.Text))
	if err != nil {
		return "", fmt.Errorf("checkpoint: %w", err)
	}
	lines := strings.Split(n.Text, "\n")
	if len(lines) < 5 || lines[3] == "" {
		return "", errors.New("checkpoint: no origin line")
	}
	origin := lines[3]

	// 2. The leaf is entry Index of that tree.
	if err := tlog.CheckRecord(p.RecordProof, tree.N, tree.Hash, p.Index, tlog.RecordHash(p.Leaf)); err != nil {
		return "", fmt.Errorf("entry %d is not in the signed tree of %d entries: %w", p.Index, tree.N, err)
	}

	// 3. The leaf records this export and, given the artifact, its bytes.
	var l leaf
	if err := json.Unmarshal(p.Leaf, &l); err != nil {
		return "", fmt.Errorf("leaf: %w", err)
	}
	if l.ExportID != p.ExportID {
		return "", fmt.Errorf("the leaf records export %q, not %q", l.ExportID, p.ExportID)
	}
	if artifactPath != "" {
		data, err := os.ReadFile(artifactPath)
		if err != nil {
			return "", err
		}
		sum := sha256.Sum256(data)
		if got := "sha256:" + hex.EncodeToString(sum[:]); got != l.Checksum {
			return "", fmt.Errorf("%s has digest %s, the ledger records %q", artifactPath, got, l.Checksum)
		}
	}
	return fmt.Sprintf("ok: export %s (%s, bundle %s, %s) is entry %d of %s, in the tree of %d entries signed by %s%s",
		l.ExportID, l.Status, l.BundleID, l.Checksum, p.Index, origin, tree.N, v.Name(), warning), nil
}

// pemVerifierKey makes a note verifier key of a PEM public key, under the
// signer name the checkpoint gives: the key hash binds name and key, so a
// signature by any other key still fails.
func pemVerifierKey(file, checkpoint string) (string, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return "", err
	}
	block, _ := pem.Decode(b)
	if block == nil {
		return "", fmt.Errorf("%s: no PEM block", file)
	}
	pub, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return "", fmt.Errorf("%s: %w", file, err)
	}
	ed, ok := pub.(ed25519.PublicKey)
	if !ok {
		return "", fmt.Errorf("%s: not an Ed25519 public key", file)
	}
	_, sigs, _ := strings.Cut(checkpoint, "\n\n")
	name, _, _ := strings.Cut(strings.TrimPrefix(sigs, "— "), " ")
	return note.NewEd25519VerifierKey(name, ed)
}
