package httpapi

import (
	"math"
	"net/http"

	"github.com/runproof/runproof/internal/ledger"
)

// The export ledger's routes: the latest signed checkpoint, consistency
// between two checkpoints, and an export's inclusion proof. A server
// started without a ledger answers them 503.

// proofDoc documents ledger.Proof as it is encoded.
type proofDoc struct {
	Type        string             `json:"type"`
	ExportID    string             `json:"export_id"`
	Index       int64              `json:"index"`
	Leaf        string             `json:"leaf"` // base64 of the leaf bytes
	Entry       ledger.ExportEntry `json:"entry"`
	TreeSize    int64              `json:"tree_size"`
	TreeHash    string             `json:"tree_hash"`    // base64
	RecordProof []string           `json:"record_proof"` // base64 hashes
	Checkpoint  string             `json:"checkpoint"`
	Origin      string             `json:"origin"`
	VerifierKey string             `json:"verifier_key"`
}

// consistencyDoc documents ledger.Consistency as it is encoded.
type consistencyDoc struct {
	OldSize       int64    `json:"old_size"`
	NewSize       int64    `json:"new_size"`
	OldCheckpoint string   `json:"old_checkpoint,omitempty"` // when one of that size is kept
	NewCheckpoint string   `json:"new_checkpoint"`
	TreeProof     []string `json:"tree_proof"` // base64 hashes
	Origin        string   `json:"origin"`
	VerifierKey   string   `json:"verifier_key"`
}

// noLedger answers for a server without a ledger.
func noLedger(w http.ResponseWriter, c *call) error {
	writeProblem(w, c.r, newProblem(http.StatusServiceUnavailable, "ledger_unavailable", "this server keeps no export ledger"))
	return nil
}

func (s *Server) ledgerCheckpoint(w http.ResponseWriter, c *call) error {
	if s.ledger == nil {
		return noLedger(w, c)
	}
	cp, err := s.ledger.Checkpoint(c.r.Context(), c.tenant())
	if err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "no-store")
	writeBody(w, http.StatusOK, "text/plain; charset=utf-8", cp.Note)
	return nil
}

func (s *Server) ledgerConsistency(w http.ResponseWriter, c *call) error {
	if s.ledger == nil {
		return noLedger(w, c)
	}
	q := newQuery(c)
	const mustFrom = "must be a tree size: a whole number, 1 or more"
	from, ok := q.whole("from", 1, math.MaxInt64, mustFrom)
	if !ok && q.str("from") == "" {
		q.errs.Add("from", mustFrom)
	}
	to, _ := q.whole("to", 1, math.MaxInt64, "must be the size of a checkpoint: a whole number, 1 or more")
	if err := q.err(); err != nil {
		return err
	}
	p, err := s.ledger.ProveConsistency(c.r.Context(), c.tenant(), from, to)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, p)
}

func (s *Server) exportProof(w http.ResponseWriter, c *call) error {
	if s.ledger == nil {
		return noLedger(w, c)
	}
	p, err := s.ledger.Prove(c.r.Context(), c.tenant(), c.r.PathValue("export_id"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, p)
}
