package ledger

import (
	"context"
	"fmt"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/runproof/runproof/internal/runproof"
)

// ProofType names the version of the proof format.
const ProofType = "runproof.ledger.proof.v1"

// Proof shows that a leaf of an export is in its tenant's ledger: the
// finished export, or the sealed manifest of a ZIP export (the ZIP's
// proof.json). It is checked with tlog and note alone (docs/integrity.md,
// docs/examples/checkproof): open Checkpoint with the published verifier
// key, read the tree from its text, and run tlog.CheckRecord(RecordProof,
// tree.N, tree.Hash, Index, tlog.RecordHash(Leaf)). Entry or Manifest is
// Leaf decoded, for reading only.
type Proof struct {
	Type        string         `json:"type"`
	ExportID    string         `json:"export_id"`
	Index       int64          `json:"index"`
	Leaf        []byte         `json:"leaf"`               // the leaf bytes as hashed (base64 in JSON)
	Entry       ExportEntry    `json:"entry,omitzero"`     // a finished export's leaf
	Manifest    *ManifestEntry `json:"manifest,omitempty"` // a sealed manifest's leaf
	TreeSize    int64          `json:"tree_size"`
	TreeHash    tlog.Hash      `json:"tree_hash"`
	RecordProof []tlog.Hash    `json:"record_proof"`
	Checkpoint  string         `json:"checkpoint"` // the signed note of the tree
	Origin      string         `json:"origin"`
	VerifierKey string         `json:"verifier_key"` // the key that signed the checkpoint
}

// errNoCheckpoint is the answer for a tenant whose ledger has no
// checkpoint yet.
var errNoCheckpoint = runproof.Errorf(runproof.ENOTFOUND, "the tenant's ledger has no checkpoint yet: nothing is sealed in it so far "+
	"(an export is sealed as it finishes; audit events and steps by the server, within a minute): ask again later")

// Checkpoint returns a tenant's latest checkpoint (ENOTFOUND while the
// ledger is empty: there is no tree to sign).
func (l *Ledger) Checkpoint(ctx context.Context, tenantID string) (runproof.LedgerCheckpoint, error) {
	c, err := l.store.LedgerCheckpoint(ctx, tenantID, 0)
	if runproof.ErrorCode(err) == runproof.ENOTFOUND {
		return c, errNoCheckpoint
	}
	return c, err
}

// Prove returns the proof that a finished export is in its tenant's
// ledger, against the latest checkpoint, in O(log n) reads.
func (l *Ledger) Prove(ctx context.Context, tenantID, exportID string) (Proof, error) {
	return l.ProveEntry(ctx, tenantID, exportID, ExportEntryType)
}

// ProveManifest returns the proof that the sealed manifest of a ZIP export,
// which this ledger appended (AppendManifest), is in its tenant's ledger,
// against the checkpoint that append signed: the ZIP's proof.json. Not the
// latest, which another server, signing with another key while servers
// move to a new one, may have signed: the ZIP is checked with the one key
// its manifest names.
func (l *Ledger) ProveManifest(ctx context.Context, tenantID, exportID string) (Proof, error) {
	p, err := l.prove(ctx, tenantID, exportID, ManifestEntryType, true)
	if err == nil && p.VerifierKey != l.vkey {
		err = fmt.Errorf("ledger of tenant %q: the checkpoint of entry %d is signed by %s, not by this server's key", tenantID, p.Index, p.VerifierKey)
	}
	return p, err
}

// ProveEntry returns the proof of an export's leaf of a type (ExportEntryType
// or ManifestEntryType) against the latest checkpoint.
func (l *Ledger) ProveEntry(ctx context.Context, tenantID, exportID, entryType string) (Proof, error) {
	return l.prove(ctx, tenantID, exportID, entryType, false)
}

// prove returns the proof of an export's leaf of a type against the latest
// checkpoint, or (appended) against the one signed with it.
func (l *Ledger) prove(ctx context.Context, tenantID, exportID, entryType string, appended bool) (Proof, error) {
	e, err := l.store.LedgerEntryByRecord(ctx, tenantID, exportID, entryType)
	if runproof.ErrorCode(err) == runproof.ENOTFOUND {
		// Another tenant's export is not found either: do not tell which.
		rec, gerr := l.store.GetExport(ctx, tenantID, exportID)
		switch {
		case gerr != nil:
			return Proof{}, gerr
		case entryType == ManifestEntryType:
			return Proof{}, runproof.Errorf(runproof.ENOTFOUND, "export %s has no sealed manifest in the ledger: only ZIP exports do", exportID)
		case rec.Status == runproof.ExportPending:
			return Proof{}, runproof.Errorf(runproof.ECONFLICT, "export %s is not in the ledger yet: it is still being made, and enters the ledger once finished", exportID)
		}
		return Proof{}, runproof.Errorf(runproof.ECONFLICT, "export %s is finished but not in the ledger yet: ask again shortly. It is appended as it finishes;"+
			" when that fails, or the server making it stopped first, a running server appends it within 30 seconds, or one does when it starts (if it stays out, the server's log says why)", exportID)
	} else if err != nil {
		return Proof{}, err
	}
	p := Proof{Type: ProofType, ExportID: exportID, Index: e.Index, Leaf: e.Data, Origin: Origin(tenantID)}
	switch entryType {
	case ExportEntryType:
		p.Entry, err = ParseExportEntry(e.Data)
	case ManifestEntryType:
		var m ManifestEntry
		m, err = ParseManifestEntry(e.Data)
		p.Manifest = &m
	default:
		err = fmt.Errorf("unknown entry type %q", entryType)
	}
	if err != nil {
		return Proof{}, fmt.Errorf("entry %d: %w", e.Index, err)
	}
	var size int64 // the latest
	if appended {
		size = e.Index + 1 // an append signs the checkpoint of its size
	}
	c, err := l.store.LedgerCheckpoint(ctx, tenantID, size)
	if err != nil {
		return Proof{}, err
	}
	if c.Size <= e.Index {
		return Proof{}, fmt.Errorf("ledger of tenant %q: entry %d is beyond the latest checkpoint (size %d)", tenantID, e.Index, c.Size)
	}
	rp, err := tlog.ProveRecord(c.Size, e.Index, storeReader(ctx, l.store, tenantID))
	if err != nil {
		return Proof{}, fmt.Errorf("prove entry %d: %w", e.Index, err)
	}
	// Hand out only a proof that holds.
	if err := tlog.CheckRecord(rp, c.Size, c.Hash, e.Index, tlog.RecordHash(e.Data)); err != nil {
		return Proof{}, fmt.Errorf("ledger of tenant %q: the proof of entry %d does not hold (%v): %w", tenantID, e.Index, err, ErrDiverged)
	}
	if rp == nil {
		rp = tlog.RecordProof{}
	}
	p.TreeSize, p.TreeHash, p.RecordProof, p.Checkpoint, p.VerifierKey = c.Size, c.Hash, rp, string(c.Note), c.VerifierKey
	return p, nil
}

// Consistency shows that the tree of size OldSize is a prefix of the tree
// of a later checkpoint: check it with tlog.CheckTree(TreeProof, New.N,
// New.Hash, Old.N, Old.Hash) after opening the new note and the old
// checkpoint the caller holds (OldCheckpoint, when one of that size is
// kept).
type Consistency struct {
	OldSize       int64       `json:"old_size"`
	NewSize       int64       `json:"new_size"`
	OldCheckpoint string      `json:"old_checkpoint,omitempty"`
	NewCheckpoint string      `json:"new_checkpoint"`
	TreeProof     []tlog.Hash `json:"tree_proof"`
	Origin        string      `json:"origin"`
	VerifierKey   string      `json:"verifier_key"` // the key that signed the new checkpoint
}

// ProveConsistency returns the proof that the tree of size from is a
// prefix of the checkpoint of size to (0: the latest). to must be a kept
// checkpoint; from may be any size up to it, as the proof needs only
// stored hashes: the checkpoint of that size the caller holds is what it
// is checked against.
func (l *Ledger) ProveConsistency(ctx context.Context, tenantID string, from, to int64) (Consistency, error) {
	switch {
	case from < 1:
		return Consistency{}, runproof.Invalid(runproof.FieldError{Field: "from", Message: "must be a tree size, 1 or more"})
	case to != 0 && to < from:
		return Consistency{}, runproof.Invalid(runproof.FieldError{Field: "from", Message: fmt.Sprintf("must be a tree size from 1 to %d, the size of to", to)})
	}
	newer, err := l.store.LedgerCheckpoint(ctx, tenantID, to)
	if runproof.ErrorCode(err) == runproof.ENOTFOUND && to == 0 {
		return Consistency{}, errNoCheckpoint
	} else if runproof.ErrorCode(err) == runproof.ENOTFOUND {
		return Consistency{}, runproof.Errorf(runproof.ENOTFOUND, "the ledger has no checkpoint of size %d: one is kept at the size after each append, "+
			"not at every size; take a size from a checkpoint or proof you hold (tree_size), or leave to out for the latest", to)
	} else if err != nil {
		return Consistency{}, err
	}
	if from > newer.Size {
		return Consistency{}, runproof.Invalid(runproof.FieldError{Field: "from", Message: fmt.Sprintf("must be at most the latest size %d", newer.Size)})
	}
	r := storeReader(ctx, l.store, tenantID)
	older, err := l.store.LedgerCheckpoint(ctx, tenantID, from)
	switch {
	case runproof.ErrorCode(err) == runproof.ENOTFOUND: // none kept at that size: the stored tree's
		older = runproof.LedgerCheckpoint{Size: from}
		if older.Hash, err = tlog.TreeHash(from, r); err != nil {
			return Consistency{}, fmt.Errorf("tree hash of size %d: %w", from, err)
		}
	case err != nil:
		return Consistency{}, err
	}
	p, err := tlog.ProveTree(newer.Size, older.Size, r)
	if err != nil {
		return Consistency{}, fmt.Errorf("prove tree %d in %d: %w", older.Size, newer.Size, err)
	}
	if err := tlog.CheckTree(p, newer.Size, newer.Hash, older.Size, older.Hash); err != nil {
		return Consistency{}, fmt.Errorf("ledger of tenant %q: the tree of size %d is not a prefix of checkpoint %d (%v): %w",
			tenantID, older.Size, newer.Size, err, ErrDiverged)
	}
	if p == nil {
		p = tlog.TreeProof{}
	}
	return Consistency{OldSize: older.Size, NewSize: newer.Size, OldCheckpoint: string(older.Note),
		NewCheckpoint: string(newer.Note), TreeProof: p, Origin: Origin(tenantID), VerifierKey: newer.VerifierKey}, nil
}
