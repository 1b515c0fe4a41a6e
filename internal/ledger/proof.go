package ledger

import (
	"context"
	"fmt"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/runproof/runproof/internal/runproof"
)

// ProofType names the version of the proof format.
const ProofType = "runproof.ledger.proof.v1"

// Proof shows that an export is in its tenant's ledger. It is checked with
// tlog and note alone (docs/integrity.md, docs/examples/checkproof):
// open Checkpoint with the published verifier key, read the tree from its
// text, and run tlog.CheckRecord(RecordProof, tree.N, tree.Hash, Index,
// tlog.RecordHash(Leaf)). Entry is Leaf decoded, for reading only.
type Proof struct {
	Type        string      `json:"type"`
	ExportID    string      `json:"export_id"`
	Index       int64       `json:"index"`
	Leaf        []byte      `json:"leaf"` // the leaf bytes as hashed (base64 in JSON)
	Entry       Entry       `json:"entry"`
	TreeSize    int64       `json:"tree_size"`
	TreeHash    tlog.Hash   `json:"tree_hash"`
	RecordProof []tlog.Hash `json:"record_proof"`
	Checkpoint  string      `json:"checkpoint"` // the signed note of the tree
	Origin      string      `json:"origin"`
	VerifierKey string      `json:"verifier_key"` // the key that signed the checkpoint
}

// Checkpoint returns a tenant's latest checkpoint (ENOTFOUND while the
// ledger is empty: there is no tree to sign).
func (l *Ledger) Checkpoint(ctx context.Context, tenantID string) (runproof.LedgerCheckpoint, error) {
	c, err := l.store.LedgerCheckpoint(ctx, tenantID, 0)
	if runproof.ErrorCode(err) == runproof.ENOTFOUND {
		return c, runproof.Errorf(runproof.ENOTFOUND, "the ledger is empty: no export has been recorded in it yet")
	}
	return c, err
}

// Prove returns the proof that an export is in its tenant's ledger,
// against the latest checkpoint, in O(log n) reads.
func (l *Ledger) Prove(ctx context.Context, tenantID, exportID string) (Proof, error) {
	e, err := l.store.LedgerEntryByExport(ctx, tenantID, exportID)
	if runproof.ErrorCode(err) == runproof.ENOTFOUND {
		// Another tenant's export is not found either: do not tell which.
		if _, gerr := l.store.GetExport(ctx, tenantID, exportID); gerr != nil {
			return Proof{}, gerr
		}
		return Proof{}, runproof.Errorf(runproof.ENOTFOUND, "export %s is not in the ledger: only finished exports are", exportID)
	} else if err != nil {
		return Proof{}, err
	}
	entry, err := ParseEntry(e.Data)
	if err != nil {
		return Proof{}, fmt.Errorf("entry %d: %w", e.Index, err)
	}
	c, err := l.store.LedgerCheckpoint(ctx, tenantID, 0)
	if err != nil {
		return Proof{}, err
	}
	if c.Size <= e.Index {
		return Proof{}, fmt.Errorf("ledger of tenant %q: entry %d is beyond the latest checkpoint (size %d)", tenantID, e.Index, c.Size)
	}
	p, err := tlog.ProveRecord(c.Size, e.Index, storeReader(ctx, l.store, tenantID))
	if err != nil {
		return Proof{}, fmt.Errorf("prove entry %d: %w", e.Index, err)
	}
	// Hand out only a proof that holds.
	if err := tlog.CheckRecord(p, c.Size, c.Hash, e.Index, tlog.RecordHash(e.Data)); err != nil {
		return Proof{}, fmt.Errorf("ledger of tenant %q: the proof of entry %d does not hold (%v): %w", tenantID, e.Index, err, ErrDiverged)
	}
	if p == nil {
		p = tlog.RecordProof{}
	}
	return Proof{Type: ProofType, ExportID: exportID, Index: e.Index, Leaf: e.Data, Entry: entry,
		TreeSize: c.Size, TreeHash: c.Hash, RecordProof: p, Checkpoint: string(c.Note),
		Origin: l.Origin(tenantID), VerifierKey: c.VerifierKey}, nil
}

// Consistency shows that the tree of one checkpoint is a prefix of the tree
// of a later one: check it with tlog.CheckTree(TreeProof, New.N, New.Hash,
// Old.N, Old.Hash) after opening both notes.
type Consistency struct {
	OldSize       int64       `json:"old_size"`
	NewSize       int64       `json:"new_size"`
	OldCheckpoint string      `json:"old_checkpoint"`
	NewCheckpoint string      `json:"new_checkpoint"`
	TreeProof     []tlog.Hash `json:"tree_proof"`
	Origin        string      `json:"origin"`
	VerifierKey   string      `json:"verifier_key"` // the key that signed the new checkpoint
}

// ProveConsistency returns the proof between two kept checkpoints of a
// tenant, of sizes from ≤ to; to = 0 means the latest.
func (l *Ledger) ProveConsistency(ctx context.Context, tenantID string, from, to int64) (Consistency, error) {
	if from < 1 || to != 0 && to < from {
		return Consistency{}, runproof.Invalid(runproof.FieldError{Field: "from", Message: "must be a checkpoint size from 1 up to to"})
	}
	newer, err := l.store.LedgerCheckpoint(ctx, tenantID, to)
	if runproof.ErrorCode(err) == runproof.ENOTFOUND && to == 0 {
		return Consistency{}, runproof.Errorf(runproof.ENOTFOUND, "the ledger is empty: no export has been recorded in it yet")
	} else if err != nil {
		return Consistency{}, err
	}
	older, err := l.store.LedgerCheckpoint(ctx, tenantID, from)
	if err != nil {
		return Consistency{}, err
	}
	if older.Size > newer.Size {
		return Consistency{}, runproof.Invalid(runproof.FieldError{Field: "from", Message: fmt.Sprintf("must be at most the latest size %d", newer.Size)})
	}
	p, err := tlog.ProveTree(newer.Size, older.Size, storeReader(ctx, l.store, tenantID))
	if err != nil {
		return Consistency{}, fmt.Errorf("prove tree %d in %d: %w", older.Size, newer.Size, err)
	}
	if err := tlog.CheckTree(p, newer.Size, newer.Hash, older.Size, older.Hash); err != nil {
		return Consistency{}, fmt.Errorf("ledger of tenant %q: checkpoint %d is not a prefix of checkpoint %d (%v): %w",
			tenantID, older.Size, newer.Size, err, ErrDiverged)
	}
	if p == nil {
		p = tlog.TreeProof{}
	}
	return Consistency{OldSize: older.Size, NewSize: newer.Size, OldCheckpoint: string(older.Note),
		NewCheckpoint: string(newer.Note), TreeProof: p, Origin: l.Origin(tenantID), VerifierKey: newer.VerifierKey}, nil
}
