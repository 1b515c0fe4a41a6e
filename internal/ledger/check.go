package ledger

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"fmt"

	"github.com/go-json-experiment/json"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// ManifestCheck is what CheckManifestProof established: the manifest's
// leaf is entry Index of the tree of Tree.N entries that Signer signed for
// Origin.
type ManifestCheck struct {
	ExportID string
	Index    int64
	Tree     tlog.Tree
	Origin   string
	Signer   string // the name of the key that signed the checkpoint (its key id)
	// OwnKey is true when no public key was given and the checkpoint was
	// checked against the verifier key proof.json carries: that shows the
	// proof intact, not who signed it.
	OwnKey bool
}

// CheckManifestProof checks a ZIP's proof.json against its manifest.json
// with nothing but the two files and a public key: the leaf proof.json
// proves is ManifestLeaf(manifestJSON); the checkpoint is signed by pub
// (the verifier key derived from it, named by its key id) for the
// tenant's log named in the manifest, and signs the tree proof.json names;
// and the record proof leads from the leaf to that tree's hash. With pub
// nil, the checkpoint is checked against the verifier key in proof.json
// and the result says so (OwnKey). Errors say what of proof.json does not
// hold, without naming the file.
func CheckManifestProof(manifestJSON, proofJSON []byte, pub ed25519.PublicKey) (ManifestCheck, error) {
	var c ManifestCheck
	var p Proof
	// Strictly: a member it does not know, or one named twice, would be
	// text in the ZIP that nothing checks.
	if err := json.Unmarshal(proofJSON, &p, json.RejectUnknownMembers(true)); err != nil {
		return c, fmt.Errorf("not a ledger proof: %w", err)
	}
	if p.Type != ProofType {
		return c, fmt.Errorf("type %q, want %q", p.Type, ProofType)
	}
	leaf, err := ManifestLeaf(manifestJSON)
	if err != nil {
		return c, err
	}
	if !bytes.Equal(p.Leaf, leaf) {
		return c, errors.New("its leaf is not the leaf of manifest.json")
	}
	m, err := ParseManifestEntry(leaf)
	if err != nil {
		return c, err
	}
	// What proof.json shows to read must be what it proves.
	if p.Entry != (ExportEntry{}) {
		return c, errors.New("it holds an export entry, and the leaf it proves is a manifest's")
	}
	if p.Manifest == nil {
		return c, errors.New("it does not show the manifest entry it proves")
	}
	if shown, err := p.Manifest.Bytes(); err != nil || !bytes.Equal(shown, leaf) {
		return c, errors.New("the manifest entry it shows is not the leaf it proves")
	}
	if p.ExportID != m.ExportID {
		return c, fmt.Errorf("it proves export %q, the manifest is of %q", p.ExportID, m.ExportID)
	}

	vkey := p.VerifierKey
	if pub != nil {
		if vkey, err = VerifierKey(pub); err != nil {
			return c, fmt.Errorf("public key: %w", err)
		}
		if p.VerifierKey != vkey {
			return c, fmt.Errorf("it names verifier key %q, not the one of the key given (%s)", p.VerifierKey, vkey)
		}
	}
	origin, tree, err := OpenCheckpoint([]byte(p.Checkpoint), vkey)
	if err != nil {
		return c, err
	}
	if want := Origin(m.TenantID); origin != want {
		return c, fmt.Errorf("the checkpoint is of the log %q, not %q", origin, want)
	}
	if p.Origin != origin {
		return c, fmt.Errorf("origin %q, the checkpoint's is %q", p.Origin, origin)
	}
	if tree.N != p.TreeSize || tree.Hash != p.TreeHash {
		return c, fmt.Errorf("the checkpoint signs the tree of %d entries %s, not tree_size %d and tree_hash %s",
			tree.N, tree.Hash, p.TreeSize, p.TreeHash)
	}
	if err := tlog.CheckRecord(p.RecordProof, tree.N, tree.Hash, p.Index, tlog.RecordHash(p.Leaf)); err != nil {
		return c, fmt.Errorf("entry %d is not in the signed tree of %d entries: %w", p.Index, tree.N, err)
	}
	v, _ := note.NewVerifier(vkey) // OpenCheckpoint parsed it
	return ManifestCheck{ExportID: m.ExportID, Index: p.Index, Tree: tree, Origin: origin, Signer: v.Name(),
		OwnKey: pub == nil}, nil
}
