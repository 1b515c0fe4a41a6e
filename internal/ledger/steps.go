package ledger

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/runproof/runproof/internal/runproof"
)

// StepsEntryType is the type of the leaf of a range of a run's steps.
const StepsEntryType = runproof.StepsEntryType

// StepsEntry is the leaf of a range of a run's steps, [FromIndex,
// ToIndex): the digest of what is stored of each (sealLine), its
// content_hash recomputed from its fields, so that a step changed in the
// database, even with its content_hash written anew, no longer matches
// the log. Its bytes are the RFC 8785 form of this object.
type StepsEntry struct {
	Type        string `json:"type"`
	TenantID    string `json:"tenant_id"`
	RunID       string `json:"run_id"`
	FromIndex   int64  `json:"from_index"`
	ToIndex     int64  `json:"to_index"`
	StepsSHA256 string `json:"steps_sha256"` // "sha256:" and the hex SHA-256 of the steps' seal lines, in index order
}

// sealLine is what a steps entry holds of one stored step: its
// content_hash recomputed from its fields, then what the hash leaves out
// and a bundle shows: whether its content is kept ("+" or "-"), its
// status, whether it is the inflection, when runproof recorded it, and
// the digest of its policy findings' RFC 8785 form ("-" for none), space
// separated, and a newline.
func sealLine(s runproof.Step) ([]byte, error) {
	content, findings := "-", "-"
	if s.Content != nil {
		content = "+"
	}
	if len(s.Findings) > 0 {
		b, err := runproof.Canonical(s.Findings)
		if err != nil {
			return nil, fmt.Errorf("step %d: findings: %w", s.Index, err)
		}
		findings = runproof.DigestBytes(b)
	}
	return fmt.Appendf(nil, "%s %s %s %t %s %s\n", runproof.StepContentHash(s), content, s.Status, s.IsInflection,
		runproof.FormatTime(s.RecordedAt), findings), nil
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
			line, err := sealLine(s)
			if err != nil {
				return StepsEntry{}, err
			}
			h.Write(line)
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
// stored steps do not hold (one missing, or a content changed) is left
// unsealed and named in the error, once the others are sealed. Processes
// that seal the same tenant at once each append what the other has not.
func (l *Ledger) SyncSteps(ctx context.Context, tenantID string) (int, error) {
	if err := checkTenant(tenantID); err != nil {
		return 0, err
	}
	total, retries := 0, 0
	var faults []error
	for after := ""; ; {
		ranges, err := l.store.StepsToSeal(ctx, tenantID, after, stepsRuns)
		if err != nil || len(ranges) == 0 {
			return total, errors.Join(append(faults, err)...)
		}
		var leaves []leaf
		for i, r := range ranges {
			e, err := stepsEntryFor(ctx, l.store, tenantID, r)
			if err != nil && ctx.Err() != nil {
				return total, err
			} else if err != nil { // a step that does not hold, or cannot be read: that run's alone
				faults = append(faults, fmt.Errorf("ledger of tenant %q: the steps of run %q are not sealed: %w", tenantID, r.RunID, err))
				continue
			}
			data, err := e.Bytes()
			if err != nil {
				return total, err
			}
			leaves = append(leaves, leaf{recordID: runproof.StepsRecordID(r.RunID, r.From), typ: StepsEntryType, data: data, seals: &ranges[i]})
		}
		_, err = l.appendLeaves(ctx, tenantID, leaves)
		switch {
		case runproof.ErrorCode(err) == runproof.ECONFLICT && retries < 2:
			// Another process sealed some of these runs meanwhile, to
			// another step: read them again.
			retries++
			continue
		case err != nil:
			return total, errors.Join(append(faults, fmt.Errorf("ledger of tenant %q: steps: %w (was run_seals changed, or the database restored? run `runproof ledger verify`)", tenantID, err))...)
		}
		total += len(leaves)
		retries, after = 0, ranges[len(ranges)-1].RunID
	}
}

// A StepsCheck checks a run's steps, read in index order from step 0,
// against the steps entries that seal them, each proven against the
// latest checkpoint under a known key, as an export reads them before it
// signs them: a step changed since it was sealed, or a sealed step not
// read, fails the export rather than being signed. Steps past the sealed
// ones pass.
type StepsCheck struct {
	runID  string
	ranges []StepsEntry // the run's entries not checked yet, in index order
	h      hash.Hash    // of the current range's lines so far
}

// CheckSteps returns the check of a run's steps against its steps entries.
func (l *Ledger) CheckSteps(ctx context.Context, tenantID, runID string) (*StepsCheck, error) {
	c := &StepsCheck{runID: runID, h: sha256.New()}
	var entries []runproof.LedgerEntry
	for from := int64(0); ; {
		e, err := l.store.LedgerEntryByRecord(ctx, tenantID, runproof.StepsRecordID(runID, from), StepsEntryType)
		if runproof.ErrorCode(err) == runproof.ENOTFOUND {
			break
		} else if err != nil {
			return nil, err
		}
		var se StepsEntry
		if err := json.Unmarshal(e.Data, &se); err != nil || se.RunID != runID || se.FromIndex != from || se.ToIndex <= from {
			return nil, changedLedger(e.Index, runID, from)
		}
		c.ranges, entries = append(c.ranges, se), append(entries, e)
		from = se.ToIndex
	}
	if len(entries) == 0 {
		return c, nil
	}
	// The entries as stored prove nothing by themselves: each must be a
	// leaf of the tree the latest checkpoint signs.
	latest, err := l.store.LedgerCheckpoint(ctx, tenantID, 0)
	if err != nil {
		return nil, err
	}
	_, tree, err := l.openHead(tenantID, latest.Note)
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		if e.Index >= tree.N {
			return nil, changedLedger(e.Index, runID, e.Index)
		}
		p, err := tlog.ProveRecord(tree.N, e.Index, storeReader(ctx, l.store, tenantID))
		if err == nil {
			err = tlog.CheckRecord(p, tree.N, tree.Hash, e.Index, tlog.RecordHash(e.Data))
		}
		if err != nil {
			return nil, changedLedger(e.Index, runID, c.ranges[0].FromIndex)
		}
	}
	return c, nil
}

// changedLedger is the error of a steps entry that is not what the signed
// ledger holds.
func changedLedger(index int64, runID string, from int64) error {
	return runproof.Errorf(runproof.ECONFLICT, "ledger entry %d, the seal of the steps of run %q from step %d, is not what the signed ledger holds: "+
		"it was changed behind runproof's back, and no bundle is made of those steps; run `runproof ledger verify`", index, runID, from)
}

// Add checks the next step: at the end of a range, ECONFLICT if the
// range's steps are not those its entry sealed.
func (c *StepsCheck) Add(s runproof.Step) error {
	if len(c.ranges) == 0 {
		return nil // not sealed yet
	}
	line, err := sealLine(s)
	if err != nil {
		return err
	}
	c.h.Write(line)
	r := c.ranges[0]
	if s.Index+1 < r.ToIndex {
		return nil
	}
	c.ranges = c.ranges[1:]
	got := runproof.DigestPrefix + hex.EncodeToString(c.h.Sum(nil))
	c.h.Reset()
	if got != r.StepsSHA256 {
		return runproof.Errorf(runproof.ECONFLICT, "steps %d to %d of run %q are not those the ledger sealed: one was changed behind runproof's back, "+
			"and no bundle is made of it; run `runproof ledger verify`", r.FromIndex, r.ToIndex-1, c.runID)
	}
	return nil
}

// Done reports, once the steps were read, a sealed step that was not,
// given how many steps the run has now (stored): the run's count lowered
// behind runproof's back. Steps recorded and sealed since the run was
// read, which were not read, are no fault.
func (c *StepsCheck) Done(stored int64) error {
	if len(c.ranges) == 0 || stored >= c.ranges[len(c.ranges)-1].ToIndex {
		return nil
	}
	last := c.ranges[len(c.ranges)-1]
	return runproof.Errorf(runproof.ECONFLICT, "run %q holds fewer steps than the %d the ledger sealed: steps were taken out of it behind runproof's back, "+
		"and no bundle is made of it; run `runproof ledger verify`", c.runID, last.ToIndex)
}
