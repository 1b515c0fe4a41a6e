package ledger

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"

	"github.com/runproof/runproof/internal/runproof"
)

// StepsEntryType is the type of the leaf of a range of a run's steps.
const StepsEntryType = runproof.StepsEntryType

// StepsEntry is the leaf of a range of a run's steps, [FromIndex,
// ToIndex): the digest of their content hashes, each recomputed from the
// step's fields (runproof.StepContentHash), so that a step changed in the
// database, even with its content_hash written anew, no longer matches
// the log. Its bytes are the RFC 8785 form of this object.
type StepsEntry struct {
	Type        string `json:"type"`
	TenantID    string `json:"tenant_id"`
	RunID       string `json:"run_id"`
	FromIndex   int64  `json:"from_index"`
	ToIndex     int64  `json:"to_index"`
	StepsSHA256 string `json:"steps_sha256"` // "sha256:" and the hex SHA-256 of each step's content_hash and a newline, in index order
}

// Bytes returns the leaf bytes: the entry's RFC 8785 form.
func (e StepsEntry) Bytes() ([]byte, error) { return runproof.Canonical(e) }

// StepReader reads a run's steps, as the steps entries are made of them.
type StepReader interface {
	ListSteps(ctx context.Context, p runproof.ListStepsParams) ([]runproof.Step, error)
}

// stepsPage is how many steps are read at a time.
const stepsPage = 1000

// stepsEntryFor reads the run's steps of r and returns their entry. A
// step missing, or whose content does not match its content_digest, is a
// *stepFault.
func stepsEntryFor(ctx context.Context, steps StepReader, tenantID string, r runproof.StepsRange) (StepsEntry, error) {
	h := sha256.New()
	next := r.From
	for next < r.To {
		page, err := steps.ListSteps(ctx, runproof.ListStepsParams{TenantID: tenantID, RunID: r.RunID, FromIndex: next,
			Limit: int(min(stepsPage, r.To-next))})
		if err != nil {
			return StepsEntry{}, err
		}
		if len(page) == 0 {
			return StepsEntry{}, &stepFault{index: next, reason: "is missing"}
		}
		for _, s := range page {
			if s.Index != next {
				return StepsEntry{}, &stepFault{index: next, reason: "is missing"}
			}
			if s.Content != nil && runproof.DigestBytes(s.Content) != s.ContentDigest {
				return StepsEntry{}, &stepFault{index: next, reason: "does not match its content_digest"}
			}
			h.Write([]byte(runproof.StepContentHash(s)))
			h.Write([]byte{'\n'})
			next++
		}
	}
	return StepsEntry{Type: StepsEntryType, TenantID: tenantID, RunID: r.RunID, FromIndex: r.From, ToIndex: r.To,
		StepsSHA256: runproof.DigestPrefix + hex.EncodeToString(h.Sum(nil))}, nil
}

// A stepFault is a step that cannot be sealed or checked as stored.
type stepFault struct {
	index  int64
	reason string
}

func (f *stepFault) Error() string { return fmt.Sprintf("step %d %s", f.index, f.reason) }

// stepsRuns is how many runs' new steps go under one checkpoint.
const stepsRuns = 100

// SyncSteps appends an entry for each of the tenant's runs with steps no
// entry seals yet, sealing them up to those stored, a hundred runs under
// each checkpoint, and returns how many entries it appended. A run whose
// stored steps do not hold (one missing, or a content changed) is an
// error naming it: nothing is sealed over it. Processes that seal the same
// tenant at once each append what the other has not.
func (l *Ledger) SyncSteps(ctx context.Context, tenantID string) (int, error) {
	if err := checkTenant(tenantID); err != nil {
		return 0, err
	}
	total := 0
	var last []runproof.StepsRange // the ranges of the previous pass
	for {
		ranges, err := l.store.StepsToSeal(ctx, tenantID, stepsRuns)
		if err != nil || len(ranges) == 0 {
			return total, err
		}
		if slices.Equal(ranges, last) {
			return total, fmt.Errorf("ledger of tenant %q: the steps of run %q from %d are in the ledger already yet not counted as sealed: "+
				"was the database restored? run `runproof ledger verify`", tenantID, ranges[0].RunID, ranges[0].From)
		}
		last = ranges
		leaves := make([]leaf, len(ranges))
		for i, r := range ranges {
			e, err := stepsEntryFor(ctx, l.store, tenantID, r)
			if err != nil {
				return total, fmt.Errorf("ledger of tenant %q: steps of run %q: %w", tenantID, r.RunID, err)
			}
			data, err := e.Bytes()
			if err != nil {
				return total, err
			}
			leaves[i] = leaf{recordID: runproof.StepsRecordID(r.RunID, r.From), typ: StepsEntryType, data: data, seals: &ranges[i]}
		}
		_, err = l.appendLeaves(ctx, tenantID, leaves)
		switch {
		case runproof.ErrorCode(err) == runproof.ECONFLICT:
			// Another process sealed some of these runs meanwhile, to
			// another step: read what is left again.
		case err != nil:
			return total, err
		default:
			total += len(leaves)
		}
	}
}
