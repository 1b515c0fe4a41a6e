// Command checkproof checks a runproof export ledger proof with the
// packages of the Go checksum database and the standard library only: it
// needs nothing of runproof, and no access to its server.
//
// Usage:
//
//	go run ./docs/examples/checkproof -pem pub.pem proof.json [ARTIFACT]
//	go run ./docs/examples/checkproof -pem pub.pem proof.json manifest.json
//	go run ./docs/examples/checkproof -pem pub.pem bundle.zip
//	go run ./docs/examples/checkproof -key VERIFIER_KEY …
//
// It opens the signed checkpoint with the published key (a note verifier
// key, or the PEM public key of GET /api/v1/signing-keys), checks that the
// leaf is in the tree the checkpoint signs, for the tenant the leaf names,
// and then what the leaf records: for a finished export (the proof of GET
// /api/v1/exports/{id}/proof), that the artifact's SHA-256, given the
// artifact, is the checksum the leaf records; for a ZIP's sealed manifest
// (the ZIP's proof.json), that the leaf is the one rebuilt from
// manifest.json. Given the ZIP, it reads both files from it. It prints one
// line and exits 0 only when everything holds; 1 when something does not;
// 3 when all holds but no key was given, so that the signature was
// checked with the key proof.json itself names (UNVERIFIED).
package main

import (
	"archive/zip"
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"reflect"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// proof holds the members of proof.json. Those that repeat what the
// checkpoint and the leaf say (tree_size, tree_hash, origin, entry,
// manifest) must say the same.
type proof struct {
	Type        string          `json:"type"`
	ExportID    string          `json:"export_id"`
	Index       int64           `json:"index"`
	Leaf        []byte          `json:"leaf"`     // base64 in JSON
	Entry       json.RawMessage `json:"entry"`    // a finished export's leaf, as JSON
	Manifest    json.RawMessage `json:"manifest"` // a sealed manifest's leaf, as JSON
	TreeSize    int64           `json:"tree_size"`
	TreeHash    tlog.Hash       `json:"tree_hash"`
	RecordProof []tlog.Hash     `json:"record_proof"`
	Checkpoint  string          `json:"checkpoint"`
	Origin      string          `json:"origin"`
	VerifierKey string          `json:"verifier_key"`
}

// proofType is the type of a runproof ledger proof.
const proofType = "runproof.ledger.proof.v1"

// leaf holds the members of the leaf this check reports.
type leaf struct {
	Type           string `json:"type"`
	ExportID       string `json:"export_id"`
	TenantID       string `json:"tenant_id"`
	Status         string `json:"status"`
	BundleID       string `json:"bundle_id"`
	Checksum       string `json:"checksum"`
	ManifestSHA256 string `json:"manifest_sha256"`
}

// Leaf types: a finished export, and the sealed manifest of a ZIP.
const (
	exportLeaf   = "runproof.export.v1"
	manifestLeaf = "runproof.manifest.v1"
)

// sealedManifest is the leaf of a ZIP's sealed manifest, rebuilt from
// manifest.json. Its members are all strings and declared in sorted
// order, so json.Marshal without HTML escaping writes its RFC 8785 form,
// as long as the strings are valid UTF-8 without U+2028 or U+2029 (which
// Go escapes and RFC 8785 does not); ids, times, key ids and digests have
// none.
type sealedManifest struct {
	BundleID       string `json:"bundle_id"`
	BundleType     string `json:"bundle_type"`
	CreatedAt      string `json:"created_at"`
	ExportID       string `json:"export_id"`
	KeyID          string `json:"key_id"`
	ManifestSHA256 string `json:"manifest_sha256"`
	TenantID       string `json:"tenant_id"`
	Type           string `json:"type"`
}

// rebuildLeaf makes the leaf of a sealed manifest of the manifest.json
// bytes: its members that name the export, and its digest.
func rebuildLeaf(manifest []byte) ([]byte, error) {
	var m sealedManifest
	if err := json.Unmarshal(manifest, &m); err != nil {
		return nil, fmt.Errorf("manifest.json: %w", err)
	}
	sum := sha256.Sum256(manifest)
	m.Type, m.ManifestSHA256 = manifestLeaf, "sha256:"+hex.EncodeToString(sum[:])
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(m); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

func main() {
	key := flag.String("key", "", "the published verifier key of the ledger (without it or -pem, the key in proof.json is used, which shows the proof is intact but not who signed it)")
	pemFile := flag.String("pem", "", "the published Ed25519 public key, PEM")
	flag.Parse()
	if flag.NArg() < 1 || flag.NArg() > 2 {
		fmt.Fprintln(os.Stderr, "usage: checkproof [-key VERIFIER_KEY | -pem PUB.pem] (proof.json [ARTIFACT | manifest.json] | bundle.zip)")
		os.Exit(2)
	}
	msg, err := check(*key, *pemFile, flag.Arg(0), flag.Arg(1))
	if err != nil {
		fmt.Fprintln(os.Stderr, "checkproof: FAILED:", err)
		os.Exit(1)
	}
	fmt.Println(msg)
	if *key == "" && *pemFile == "" {
		// Intact, but signed by whoever wrote proof.json: as runproof
		// verify without --key, not a pass a script may take for one.
		fmt.Println("UNVERIFIED: no -key or -pem given, so who signed the checkpoint is not checked")
		os.Exit(3)
	}
}

func check(key, pemFile, proofPath, otherPath string) (string, error) {
	var b, manifest []byte
	var err error
	if strings.HasSuffix(proofPath, ".zip") && otherPath == "" {
		if b, manifest, err = readZIP(proofPath); err != nil {
			return "", err
		}
		proofPath = proofPath + ": proof.json"
	} else if b, err = os.ReadFile(proofPath); err != nil {
		return "", err
	}
	var p proof
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return "", fmt.Errorf("%s: %w", proofPath, err)
	}
	if p.Type != proofType {
		return "", fmt.Errorf("%s: type %q, not %q", proofPath, p.Type, proofType)
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
	var unverified *note.UnverifiedNoteError
	if errors.As(err, &unverified) && len(unverified.Note.UnverifiedSigs) > 0 {
		s := unverified.Note.UnverifiedSigs[0]
		return "", fmt.Errorf("checkpoint: not signed by the key given (key hash %08x) but by %s (key hash %08x): give the ledger's public key",
			v.KeyHash(), s.Name, s.Hash)
	} else if err != nil {
		return "", fmt.Errorf("checkpoint: %w", err)
	}
	if p.VerifierKey != key {
		return "", fmt.Errorf("%s: verifier_key %q is not the key that signed the checkpoint, %q", proofPath, p.VerifierKey, key)
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
	if p.TreeSize != tree.N || p.TreeHash != tree.Hash || p.Origin != origin {
		return "", fmt.Errorf("%s: tree_size %d, tree_hash %v and origin %q are not the checkpoint's %d, %v and %q",
			proofPath, p.TreeSize, p.TreeHash, p.Origin, tree.N, tree.Hash, origin)
	}

	// 2. The leaf is entry Index of that tree.
	if err := tlog.CheckRecord(p.RecordProof, tree.N, tree.Hash, p.Index, tlog.RecordHash(p.Leaf)); err != nil {
		return "", fmt.Errorf("entry %d is not in the signed tree of %d entries: %w", p.Index, tree.N, err)
	}

	// 3. The leaf records this export, in its tenant's log, and what the
	// files given hold.
	var l leaf
	if err := json.Unmarshal(p.Leaf, &l); err != nil {
		return "", fmt.Errorf("leaf: %w", err)
	}
	if l.ExportID != p.ExportID {
		return "", fmt.Errorf("the leaf records export %q, not %q", l.ExportID, p.ExportID)
	}
	shown := map[string]json.RawMessage{exportLeaf: p.Entry, manifestLeaf: p.Manifest}
	for typ, view := range shown {
		if (typ == l.Type) != (view != nil) || view != nil && !sameJSON(view, p.Leaf) {
			return "", fmt.Errorf("%s: its entry or manifest is not the leaf it proves, %s", proofPath, p.Leaf)
		}
	}
	if want := "runproof/ledger/" + l.TenantID; origin != want {
		return "", fmt.Errorf("the checkpoint is of the log %q, the leaf is of %q", origin, want)
	}
	switch l.Type {
	case exportLeaf:
		if manifest != nil {
			return "", fmt.Errorf("%s proves a finished export, not the ZIP's manifest", proofPath)
		}
		if otherPath != "" {
			data, err := os.ReadFile(otherPath)
			if err != nil {
				return "", err
			}
			sum := sha256.Sum256(data)
			if got := "sha256:" + hex.EncodeToString(sum[:]); got != l.Checksum {
				return "", fmt.Errorf("%s has digest %s, the ledger records %q", otherPath, got, l.Checksum)
			}
		}
		return fmt.Sprintf("ok: export %s (%s, bundle %s, %s) is entry %d of %s, in the tree of %d entries signed by %s%s",
			l.ExportID, l.Status, l.BundleID, l.Checksum, p.Index, origin, tree.N, v.Name(), warning), nil
	case manifestLeaf:
		if manifest == nil {
			if otherPath == "" {
				return "", errors.New("a sealed manifest's proof: give its manifest.json (or the ZIP instead of proof.json)")
			}
			if manifest, err = os.ReadFile(otherPath); err != nil {
				return "", err
			}
			if bytes.HasPrefix(manifest, []byte("PK")) {
				return "", fmt.Errorf("%s proves a ZIP's sealed manifest, and %s is a ZIP, not its manifest.json: give the ZIP alone, "+
					"or the export's proof from GET /api/v1/exports/{id}/proof with the ZIP", proofPath, otherPath)
			}
		}
		rebuilt, err := rebuildLeaf(manifest)
		if err != nil {
			return "", err
		}
		if !bytes.Equal(rebuilt, p.Leaf) {
			return "", fmt.Errorf("the leaf of %s is not the one rebuilt from manifest.json:\n  proved  %s\n  rebuilt %s", proofPath, p.Leaf, rebuilt)
		}
		return fmt.Sprintf("ok: the manifest of export %s (bundle %s, %s) is entry %d of %s, in the tree of %d entries signed by %s%s",
			l.ExportID, l.BundleID, l.ManifestSHA256, p.Index, origin, tree.N, v.Name(), warning), nil
	}
	return "", fmt.Errorf("leaf of unknown type %q", l.Type)
}

// sameJSON reports whether two JSON texts hold the same values, numbers
// compared as written (a size past 2^53 is not rounded).
func sameJSON(a, b []byte) bool {
	decode := func(b []byte) (any, error) {
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.UseNumber()
		var v any
		err := dec.Decode(&v)
		return v, err
	}
	x, errX := decode(a)
	y, errY := decode(b)
	return errX == nil && errY == nil && reflect.DeepEqual(x, y)
}

// readZIP returns proof.json and manifest.json of a ZIP bundle.
func readZIP(name string) (proof, manifest []byte, err error) {
	zr, err := zip.OpenReader(name)
	if err != nil {
		return nil, nil, err
	}
	defer zr.Close()
	read := func(member string) ([]byte, error) {
		f, err := zr.Open(member)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		defer f.Close()
		return io.ReadAll(f)
	}
	if proof, err = read("proof.json"); err != nil {
		return nil, nil, err
	}
	manifest, err = read("manifest.json")
	return proof, manifest, err
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
	if strings.Contains(block.Type, "PRIVATE KEY") {
		return "", fmt.Errorf("%s is a private key: give the public key (runproof serves it at /api/v1/signing-keys)", file)
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
