package ledger

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"slices"

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
func sealLine(s runproof.Step, hasContent bool) ([]byte, error) {
	content, findings := "-", "-"
	if hasContent {
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

// readSteps reads a run's steps [from, to), in index order, a page at a
// time (without their content when withoutContent), and hands each to
// each. A step missing, or whose content does not match its
// content_digest, is a *stepFault.
func readSteps(ctx context.Context, steps StepReader, tenantID, runID string, from, to int64, withoutContent bool, each func(runproof.Step) error) error {
	for next := from; next < to; {
		page, err := steps.ListSteps(ctx, runproof.ListStepsParams{TenantID: tenantID, RunID: runID, FromIndex: next,
			Limit: int(min(stepsPage, to-next)), MaxContentBytes: runproof.StepPageBytes, WithoutContent: withoutContent})
		if err != nil {
			return err
		}
		if len(page) == 0 {
			return &stepFault{index: next, reason: "is missing"}
		}
		for _, s := range page {
			switch {
			case s.Index != next:
				return &stepFault{index: next, reason: "is missing"}
			case s.Content != nil && runproof.DigestBytes(s.Content) != s.ContentDigest:
				return &stepFault{index: next, reason: "does not match its content_digest"}
			}
			if err := each(s); err != nil {
				return err
			}
			next++
		}
	}
	return nil
}

// A rangeHash is the steps_sha256 of a range of steps, added in index
// order.
type rangeHash struct{ h hash.Hash }

func newRangeHash() rangeHash { return rangeHash{sha256.New()} }

// add adds a step, which hasContent says has content or not.
func (r rangeHash) add(s runproof.Step, hasContent bool) error {
	line, err := sealLine(s, hasContent)
	if err == nil {
		r.h.Write(line)
	}
	return err
}

// sum returns the digest of the steps added since the last sum, and
// starts again.
func (r rangeHash) sum() string {
	d := runproof.DigestPrefix + hex.EncodeToString(r.h.Sum(nil))
	r.h.Reset()
	return d
}

// stepsEntryFor reads the run's steps of r and returns their entry.
func stepsEntryFor(ctx context.Context, steps StepReader, tenantID string, r runproof.StepsRange) (StepsEntry, error) {
	h := newRangeHash()
	add := func(s runproof.Step) error { return h.add(s, s.Content != nil) }
	if err := readSteps(ctx, steps, tenantID, r.RunID, r.From, r.To, false, add); err != nil {
		return StepsEntry{}, err
	}
	return StepsEntry{Type: StepsEntryType, TenantID: tenantID, RunID: r.RunID, FromIndex: r.From, ToIndex: r.To, StepsSHA256: h.sum()}, nil
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
// stored steps do not hold (one missing, or a content changed) or cannot
// be read is left unsealed and named in the error, once the others are
// sealed. Processes that seal the same tenant at once each append what
// the other has not.
func (l *Ledger) SyncSteps(ctx context.Context, tenantID string) (int, error) {
	if err := checkTenant(tenantID); err != nil {
		return 0, err
	}
	total := 0
	var faults []error
	var conflicted []runproof.RunSeal // the seals of an attempt another process got in first
	for after := ""; ; {
		runs, err := l.store.StepsToSeal(ctx, tenantID, after, stepsRuns)
		if err != nil || len(runs) == 0 {
			return total, errors.Join(append(faults, err)...)
		}
		if conflicted != nil && slices.Equal(runs, conflicted) { // no one got further: a conflict that stays
			return total, errors.Join(append(faults, fmt.Errorf("ledger of tenant %q: the steps of run %q from %d are in the ledger already, "+
				"yet not counted as sealed: was run_seals changed, or the database restored? run `runproof ledger verify`", tenantID, runs[0].RunID, runs[0].Sealed))...)
		}
		conflicted = nil
		var leaves []leaf
		for _, run := range runs {
			r := runproof.StepsRange{RunID: run.RunID, From: run.Sealed, To: run.Stored}
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
			leaves = append(leaves, leaf{recordID: runproof.StepsRecordID(r.RunID, r.From), typ: StepsEntryType, data: data, seals: &r})
		}
		_, err = l.appendLeaves(ctx, tenantID, leaves)
		if runproof.ErrorCode(err) == runproof.ECONFLICT {
			// Another process sealed some of these runs meanwhile, to
			// another step: read them again, as long as someone gets further.
			conflicted = runs
			continue
		} else if err != nil {
			return total, errors.Join(append(faults, fmt.Errorf("ledger of tenant %q: steps: %w", tenantID, err))...)
		}
		total += len(leaves)
		after = runs[len(runs)-1].RunID
	}
}

// A StepsCheck checks a run's steps, read in index order from step 0,
// against the steps entries that seal them, each proven against the
// latest checkpoint under a known key, as an export reads them before it
// signs them: a step changed since it was sealed, or a sealed step taken
// out of the run, fails the export rather than being signed. Steps past
// the sealed ones pass.
type StepsCheck struct {
	steps    StepReader
	tenantID string
	runID    string
	unread   bool         // the steps come without their content
	ranges   []StepsEntry // the run's entries not checked yet, in index order
	next     int64        // the index of the next step to add
	h        rangeHash    // of the first range's steps added so far
}

// sealedRange is a steps entry as stored, with what its leaf says.
type sealedRange struct {
	entry runproof.LedgerEntry
	StepsEntry
}

// CheckSteps returns the check of a run's steps against its steps entries.
//
// withoutContent says that the steps will be added as read without their
// content (runproof.ListStepsParams.WithoutContent), by a caller that
// shows none: whether a step has content is then read from its
// content_digest, which runproof sets with the content alone.
func (l *Ledger) CheckSteps(ctx context.Context, tenantID, runID string, withoutContent bool) (*StepsCheck, error) {
	var sealed []sealedRange
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
		sealed = append(sealed, sealedRange{e, se})
		from = se.ToIndex
	}
	c := &StepsCheck{steps: l.store, tenantID: tenantID, runID: runID, unread: withoutContent, h: newRangeHash()}
	if len(sealed) == 0 {
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
	for _, r := range sealed {
		held := r.entry.Index < tree.N
		if held {
			p, err := tlog.ProveRecord(tree.N, r.entry.Index, storeReader(ctx, l.store, tenantID))
			held = err == nil && tlog.CheckRecord(p, tree.N, tree.Hash, r.entry.Index, tlog.RecordHash(r.entry.Data)) == nil
		}
		if !held {
			return nil, changedLedger(r.entry.Index, runID, r.FromIndex)
		}
		c.ranges = append(c.ranges, r.StepsEntry)
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
	c.next = s.Index + 1
	if len(c.ranges) == 0 {
		return nil // not sealed yet
	}
	if err := c.h.add(s, s.Content != nil || c.unread && s.ContentDigest != ""); err != nil {
		return err
	}
	r := c.ranges[0]
	if c.next < r.ToIndex {
		return nil
	}
	c.ranges = c.ranges[1:]
	if c.h.sum() != r.StepsSHA256 {
		return runproof.Errorf(runproof.ECONFLICT, "steps %d to %d of run %q are not those the ledger sealed: one was changed behind runproof's back, "+
			"and no bundle is made of it; run `runproof ledger verify`", r.FromIndex, r.ToIndex-1, c.runID)
	}
	return nil
}

// Done ends the check once the steps were read, given how many steps the
// run has now (stored). A range sealed since the run was read, of which
// only the first steps were read, is read to its end to be checked; a
// sealed step the run no longer counts is the run's count lowered behind
// runproof's back.
func (c *StepsCheck) Done(ctx context.Context, stored int64) error {
	if len(c.ranges) == 0 {
		return nil
	}
	if last := c.ranges[len(c.ranges)-1]; stored < last.ToIndex {
		return runproof.Errorf(runproof.ECONFLICT, "run %q holds fewer steps than the %d the ledger sealed: steps were taken out of it behind runproof's back, "+
			"and no bundle is made of it; run `runproof ledger verify`", c.runID, last.ToIndex)
	}
	if r := c.ranges[0]; r.FromIndex < c.next {
		err := readSteps(ctx, c.steps, c.tenantID, c.runID, c.next, r.ToIndex, c.unread, c.Add)
		var fault *stepFault
		if errors.As(err, &fault) {
			return runproof.Errorf(runproof.ECONFLICT, "run %q: %v, though sealed: changed behind runproof's back; run `runproof ledger verify`", c.runID, fault)
		}
		return err
	}
	return nil
}
