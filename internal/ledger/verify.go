package ledger

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"runtime"
	"slices"
	"sync"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/runproof/runproof/internal/runproof"
)

// VerifyParams says which log Verify checks and against what.
type VerifyParams struct {
	TenantID string
	// VerifierKeys are the keys a checkpoint may be signed with. When empty,
	// each checkpoint whose signature is checked (see AllSignatures) is
	// checked against the key recorded with it, which shows that no note
	// was altered but not who signed them.
	VerifierKeys []string
	// Checkpoint is an older signed checkpoint, kept outside the database
	// (by an auditor, say): Verify proves that the log still extends it.
	Checkpoint []byte
	// FinishedBefore, when set, makes every export of the tenant finished
	// before it required to be in the log.
	FinishedBefore time.Time
	// AllSignatures makes Verify check the signature of every checkpoint.
	// Otherwise it checks the latest one's, which covers every entry, and
	// of the others that they are well formed and state the tree
	// recomputed at their size: an older checkpoint whose signature alone
	// was altered is then not found. When the latest signature does not
	// hold, Verify checks the others' signatures too, to name the first
	// checkpoint at fault.
	AllSignatures bool
	// Progress, when set, is called after each page of entries, and each
	// page of the steps a steps entry seals, with how many entries have
	// been recomputed out of how many there are.
	Progress func(done, total int64)
	// PageSize is how many entries (and checkpoints) are read at once;
	// DefaultPageSize when 0. Memory grows with it, round trips shrink.
	PageSize int64
}

// DefaultPageSize is the page size of Verify's reads unless told.
const DefaultPageSize = 1000

// Report is what Verify checked.
type Report struct {
	TenantID    string
	Entries     int64     // entries recomputed from the export records, audit events and steps
	Manifests   int64     // of which ZIP exports' sealed manifests (each beside its export's own entry)
	AuditEvents int64     // of which audit events
	StepRanges  int64     // of which ranges of a run's steps
	Steps       int64     // the steps those seal
	Unsealed    int64     // runs with steps no entry seals yet, which wait for their seal
	Incidents   int64     // incidents that agree with their inflection steps (one opened while Verify runs may count twice)
	Checkpoints int64     // checkpoints whose tree hash holds
	Signatures  int64     // checkpoints whose signature was checked, and holds
	Latest      tlog.Tree // the latest checkpoint's tree
	OwnKeys     bool      // signatures checked against the keys recorded with them
	Extends     int64     // size of the given older checkpoint proven a prefix (0 if none)
}

// A Mismatch is a ledger that does not hold: the first entry at fault and
// what is wrong with it.
type Mismatch struct {
	TenantID string
	Index    int64 // the first entry at fault; -1 when none can be named
	Reason   string
	Err      error // the checkpoint's error the reason states, if any

	latestSignature bool // the latest checkpoint does not open: older signatures may name an earlier entry
}

func (m *Mismatch) Unwrap() error { return m.Err }

func (m *Mismatch) Error() string {
	if m.Index < 0 {
		return fmt.Sprintf("ledger of tenant %q: %s", m.TenantID, m.Reason)
	}
	return fmt.Sprintf("ledger of tenant %q: entry %d: %s", m.TenantID, m.Index, m.Reason)
}

// Verify recomputes a tenant's log up to its latest checkpoint: every
// entry from the export record or audit event it records, every stored
// hash, and every checkpoint's tree hash and origin, in index order, and
// the signatures (see AllSignatures); then, when asked, consistency with
// an older checkpoint and the presence of every finished export; and
// always that every audit event is in the log or waits for it. Pages are
// read ahead while the previous ones are checked. It stops at the first
// fault and returns it as a *Mismatch; other errors are failures to read.
// Memory does not grow with the log (but for the entries appended while it
// runs, which tail reads): a few pages, of the tree only the hashes later
// entries and checkpoints are computed from (O(log n)), and how far each
// run's steps are sealed (O(runs)).
func Verify(ctx context.Context, store VerifyStore, p VerifyParams) (Report, error) {
	if p.PageSize <= 0 {
		p.PageSize = DefaultPageSize
	}
	v := &verification{ctx: ctx, store: store, p: p, report: Report{TenantID: p.TenantID, OwnKeys: len(p.VerifierKeys) == 0}}
	err := v.run()
	var m *Mismatch
	if errors.As(err, &m) && m.latestSignature {
		err = v.firstBadSignature(m)
	}
	return v.report, err
}

// VerifyStore is what Verify reads a log, the records and steps its
// entries are rebuilt from, and the incidents it checks by their steps,
// from.
type VerifyStore interface {
	runproof.LedgerStore
	StepReader
	ListIncidents(ctx context.Context, p runproof.ListIncidentsParams) ([]runproof.Incident, error)
	GetRun(ctx context.Context, tenantID, runID string) (runproof.Run, error)
}

type verification struct {
	ctx    context.Context
	store  VerifyStore
	p      VerifyParams
	report Report

	latest   runproof.LedgerCheckpoint // the latest checkpoint when Verify began
	given    note.Verifiers            // of VerifierKeys
	tree     edge                      // the recomputed stored hashes still needed
	repeated int64                     // the first entry that repeats an earlier one, or -1
	lastSize int64                     // size of the last checkpoint that held
	sealed   map[string]int64          // by run: the steps its steps entries seal, so far
}

func (v *verification) fail(index int64, format string, args ...any) *Mismatch {
	return &Mismatch{TenantID: v.p.TenantID, Index: index, Reason: fmt.Sprintf(format, args...)}
}

func (v *verification) run() error {
	latest, err := v.store.LedgerCheckpoint(v.ctx, v.p.TenantID, 0)
	if err != nil && runproof.ErrorCode(err) != runproof.ENOTFOUND {
		return err
	}
	v.latest = latest // of size 0 when there is none
	if v.given, err = newVerifiers(v.p.VerifierKeys); err != nil {
		return err
	}
	if v.repeated, err = v.store.FirstRepeatedLedgerEntry(v.ctx, v.p.TenantID); err != nil {
		return err
	}
	v.tree = edge{hashes: map[int64]tlog.Hash{}, keep: v.olderProofHashes()}
	v.sealed = map[string]int64{}

	ctx, cancel := context.WithCancel(v.ctx)
	pages := make(chan chan page, runtime.GOMAXPROCS(0))
	r := &pageReader{store: v.store, p: v.p, size: v.latest.Size, given: v.given, own: map[string]note.Verifiers{}}
	var wg sync.WaitGroup
	wg.Go(func() { r.run(ctx, pages) })
	defer wg.Wait()
	defer cancel()
	for next := range pages {
		if err := v.page(<-next); err != nil {
			return err
		}
		if v.p.Progress != nil {
			v.p.Progress(v.report.Entries, v.latest.Size)
		}
	}
	if v.lastSize != v.latest.Size {
		return v.fail(v.lastSize, "entries from %d to %d are under no signed checkpoint", v.lastSize, v.latest.Size-1)
	}
	if err := v.tail(); err != nil {
		return err
	}
	if err := v.older(v.latest.Size); err != nil {
		return err
	}
	if err := v.complete(); err != nil {
		return err
	}
	if err := v.completeManifests(); err != nil {
		return err
	}
	if err := v.completeAudit(); err != nil {
		return err
	}
	if err := v.completeSteps(); err != nil {
		return err
	}
	return v.incidents()
}

// page checks the entries of a page in index order, each checkpoint once
// the entries it covers are.
func (v *verification) page(pg page) error {
	if pg.err != nil {
		return pg.err
	}
	for k, e := range pg.entries { // a page follows the last entry checked, if the page before was whole
		want := v.report.Entries + int64(k)
		switch {
		case e.Index == want-1: // an entry read twice: its record stored twice
			return v.fail(e.Index, "read twice: the record it names, %s, is stored more than once (a row added behind runproof's back)", e.RecordID)
		case e.Index != want:
			return v.fail(want, "missing: the next entry stored is %d", e.Index)
		}
	}
	if runproof.ErrorCode(pg.storedErr) == runproof.ENOTFOUND {
		return v.missingHash(pg.from, int64(len(pg.entries)), pg.storedErr)
	} else if pg.storedErr != nil {
		return pg.storedErr
	}
	cps := pg.checkpoints
	for _, e := range pg.entries {
		if err := v.entry(e, &pg); err != nil {
			return err
		}
		v.report.Entries++
		for len(cps) > 0 && cps[0].Size <= v.report.Entries {
			if err := v.checkpoint(cps[0]); err != nil {
				return err
			}
			cps = cps[1:]
		}
	}
	if len(cps) > 0 {
		return v.fail(v.report.Entries, "missing: a checkpoint is signed for %d entries, the ledger holds %d", cps[0].Size, v.report.Entries)
	}
	v.tree.prune(v.report.Entries)
	return nil
}

// missingHash names the entry of entries [from, from+count) whose stored
// hash is missing.
func (v *verification) missingHash(from, count int64, err error) error {
	for i := from; i < from+count; i++ {
		for k := tlog.StoredHashCount(i); k < tlog.StoredHashCount(i+1); k++ {
			if _, err := v.store.LedgerHashes(v.ctx, v.p.TenantID, []int64{k}); runproof.ErrorCode(err) == runproof.ENOTFOUND {
				return v.fail(i, "its stored hash %d is missing", k)
			}
		}
	}
	return err
}

// entry recomputes one entry from its export record (a finished export's
// leaf, or a sealed manifest's from the request and the sealed event) and
// its stored hashes from the tree so far. A sealed manifest stays in the
// log whatever became of its export.
func (v *verification) entry(e runproof.LedgerRecord, pg *page) error {
	data, what, err := v.leaf(e, pg)
	if err != nil {
		return err
	}
	if !bytes.Equal(data, e.Data) {
		if e.Type == StepsEntryType {
			return v.fail(e.Index, "does not match %s, which it seals (%s): a step was changed behind runproof's back", what, diffFields(e.Data, data))
		}
		return v.fail(e.Index, "does not match the record of %s (%s)", what, diffFields(e.Data, data))
	}
	if e.Index == v.repeated {
		return v.fail(e.Index, "%s is in the ledger twice", what)
	}
	if e.Type == StepsEntryType { // it holds: the run's steps are sealed up to its end
		var se StepsEntry
		if err := json.Unmarshal(data, &se); err != nil {
			return err
		}
		v.report.StepRanges++
		v.report.Steps += se.ToIndex - se.FromIndex
		v.sealed[se.RunID] = se.ToIndex
	}
	hs, err := tlog.StoredHashes(e.Index, data, &v.tree)
	if err != nil {
		return err
	}
	base := tlog.StoredHashIndex(0, e.Index)
	for k, h := range hs {
		i := base + int64(k)
		if pg.stored[i-pg.storedFrom] != h {
			return v.fail(e.Index, "stored hash %d differs from the one recomputed from the entry", i)
		}
		v.tree.hashes[i] = h
	}
	return nil
}

// leaf recomputes an entry's leaf from the record it is of, which it
// names for messages.
func (v *verification) leaf(e runproof.LedgerRecord, pg *page) (data []byte, what string, err error) {
	if e.Type == StepsEntryType {
		return v.stepsLeaf(e)
	}
	if e.Type == AuditEntryType {
		what = "audit event " + e.RecordID
		ev, ok := pg.audit[e.RecordID]
		if !ok {
			return nil, what, v.fail(e.Index, "audit event %s is not among the audit events", e.RecordID)
		}
		v.report.AuditEvents++
		data, err = auditLeafBytes(ev)
		return data, what, err
	}
	what = "export " + e.RecordID
	if e.Export == nil {
		return nil, what, v.fail(e.Index, "export %s is not among the export records", e.RecordID)
	}
	rec := *e.Export
	switch e.Type {
	case ExportEntryType:
		if data, err = leafBytes(rec); err != nil {
			return nil, what, v.fail(e.Index, "export %s is %s, yet in the ledger", e.RecordID, rec.Status)
		}
	case ManifestEntryType:
		if data, err = manifestLeafBytes(rec); err != nil {
			return nil, what, v.fail(e.Index, "export %s has no sealed manifest, yet its manifest is in the ledger", e.RecordID)
		}
		v.report.Manifests++
	default:
		return nil, what, v.fail(e.Index, "unknown entry type %q", e.Type)
	}
	return data, what, nil
}

// stepsLeaf rebuilds a steps entry from the steps of the run it names,
// read from the store.
func (v *verification) stepsLeaf(e runproof.LedgerRecord) (data []byte, what string, err error) {
	var stored StepsEntry
	if err := json.Unmarshal(e.Data, &stored); err != nil || stored.Type != StepsEntryType ||
		e.RecordID != runproof.StepsRecordID(stored.RunID, stored.FromIndex) || stored.FromIndex < 0 || stored.ToIndex <= stored.FromIndex {
		return nil, "steps", v.fail(e.Index, "is not the steps entry of %s", e.RecordID)
	}
	what = fmt.Sprintf("steps %d to %d of run %s", stored.FromIndex, stored.ToIndex-1, stored.RunID)
	switch before := v.sealed[stored.RunID]; {
	case stored.FromIndex < before:
		return nil, what, v.fail(e.Index, "it seals %s again, after earlier entries sealed them up to %d: the sealing of the run was made to start over behind runproof's back",
			what, before)
	case stored.FromIndex > before:
		return nil, what, v.fail(e.Index, "it seals %s, but no entry before seals steps %d to %d of the run: they were kept from sealing behind runproof's back",
			what, before, stored.FromIndex-1)
	}
	var steps StepReader = v.store
	if v.p.Progress != nil { // an entry may seal a million steps: said to be under way after each page of them
		steps = pageProgress{StepReader: v.store, each: func() { v.p.Progress(v.report.Entries, v.latest.Size) }}
	}
	rebuilt, err := stepsEntryFor(v.ctx, steps, v.p.TenantID, runproof.StepsRange{RunID: stored.RunID, From: stored.FromIndex, To: stored.ToIndex})
	var fault *stepFault
	if errors.As(err, &fault) {
		return nil, what, v.fail(e.Index, "it seals %s, but %s: a step was changed or removed behind runproof's back", what, fault)
	} else if err != nil {
		return nil, what, err
	}
	data, err = rebuilt.Bytes()
	return data, what, err
}

// pageProgress calls each after every page of steps it reads.
type pageProgress struct {
	StepReader
	each func()
}

func (p pageProgress) ListSteps(ctx context.Context, params runproof.ListStepsParams) ([]runproof.Step, error) {
	steps, err := p.StepReader.ListSteps(ctx, params)
	p.each()
	return steps, err
}

// checkpoint checks a checkpoint against the tree recomputed so far: its
// note, the tenant's origin, the tree the note states and the row, and
// the tree hash at its size.
func (v *verification) checkpoint(c openedCheckpoint) error {
	at := v.lastSize // the first entry the checkpoint covers that no earlier one did
	if c.err != nil {
		m := v.fail(at, "checkpoint of size %d: %v", c.Size, c.err)
		m.Err, m.latestSignature = c.err, c.Size == v.latest.Size
		return m
	}
	if want := Origin(v.p.TenantID); c.origin != want {
		return v.fail(at, "checkpoint of size %d is signed for %q, not %q", c.Size, c.origin, want)
	}
	if c.tree.N != c.Size || c.tree.Hash != c.Hash {
		return v.fail(at, "checkpoint of size %d: its note signs size %d, hash %s; the row says hash %s", c.Size, c.tree.N, c.tree.Hash, tlog.Hash(c.Hash))
	}
	th, err := tlog.TreeHash(c.Size, &v.tree)
	if err != nil {
		return err
	}
	if th != c.tree.Hash {
		return v.fail(at, "the entries do not hash to the checkpoint of size %d: one of entries %d to %d was changed", c.Size, at, c.Size-1)
	}
	v.lastSize = c.Size
	v.report.Checkpoints++
	if c.signed {
		v.report.Signatures++
	}
	v.report.Latest = c.tree
	return nil
}

// tail checks that no entry lies beyond the latest checkpoint, but those
// appended since Verify began, which a newer checkpoint covers.
func (v *verification) tail() error {
	more, err := v.store.LedgerEntries(v.ctx, v.p.TenantID, v.latest.Size, math.MaxInt64)
	if err != nil || len(more) == 0 {
		return err
	}
	now, err := v.store.LedgerCheckpoint(v.ctx, v.p.TenantID, 0)
	if err != nil && runproof.ErrorCode(err) != runproof.ENOTFOUND {
		return err
	}
	if last := more[len(more)-1].Index; now.Size <= last {
		return v.fail(v.latest.Size, "entries from %d to %d are under no signed checkpoint", v.latest.Size, last)
	}
	return nil
}

// firstBadSignature names the first checkpoint whose signature does not
// hold, once the latest one's did not (latest): the trees of all of them
// held, so their signatures alone are left to check.
func (v *verification) firstBadSignature(latest *Mismatch) error {
	if v.p.AllSignatures { // checked in order already
		return latest
	}
	r := &pageReader{store: v.store, p: v.p, given: v.given, own: map[string]note.Verifiers{}}
	for after := int64(0); ; {
		cps, err := v.store.LedgerCheckpoints(v.ctx, v.p.TenantID, after, int(v.p.PageSize))
		if err != nil {
			return err
		}
		for _, c := range cps {
			if c.Size >= v.latest.Size {
				return latest
			}
			keys, err := r.verifiers(c)
			if err == nil {
				_, _, err = openCheckpoint(c.Note, keys)
			}
			if err != nil {
				m := v.fail(after, "checkpoint of size %d: %v", c.Size, err)
				m.Err = err
				return m
			}
			after = c.Size
		}
		if len(cps) < int(v.p.PageSize) {
			return latest
		}
	}
}

// olderProofHashes returns the stored hashes the consistency proof with
// the given older checkpoint reads, for the tree to keep them; none when
// there is no such checkpoint, or it does not open (older says why).
func (v *verification) olderProofHashes() map[int64]bool {
	if v.p.Checkpoint == nil {
		return nil
	}
	_, old, err := readCheckpoint(v.p.Checkpoint)
	if err != nil || old.N < 1 || old.N > v.latest.Size {
		return nil
	}
	keep := map[int64]bool{}
	_, err = tlog.ProveTree(v.latest.Size, old.N, tlog.HashReaderFunc(func(indexes []int64) ([]tlog.Hash, error) {
		for _, i := range indexes {
			keep[i] = true
		}
		return make([]tlog.Hash, len(indexes)), nil // which hashes are read does not depend on them
	}))
	if err != nil {
		return nil
	}
	return keep
}

// older proves that the log extends the checkpoint given from outside.
func (v *verification) older(n int64) error {
	if v.p.Checkpoint == nil {
		return nil
	}
	keys := v.p.VerifierKeys
	if len(keys) == 0 && v.report.Checkpoints > 0 {
		keys = []string{v.latest.VerifierKey}
	}
	origin, old, err := OpenCheckpoint(v.p.Checkpoint, keys...)
	if err != nil {
		return v.fail(-1, "the given checkpoint: %v", err)
	}
	if want := Origin(v.p.TenantID); origin != want {
		return v.fail(-1, "the given checkpoint is signed for %q, not %q", origin, want)
	}
	if old.N > n {
		return v.fail(n, "missing: the given checkpoint is signed for %d entries, the ledger holds %d", old.N, n)
	}
	latest := v.report.Latest
	p, err := tlog.ProveTree(latest.N, old.N, &v.tree)
	if err != nil {
		return err
	}
	if err := tlog.CheckTree(p, latest.N, latest.Hash, old.N, old.Hash); err != nil {
		return v.fail(-1, "the ledger does not extend the given checkpoint of size %d: an entry below %d was changed (%v)", old.N, old.N, err)
	}
	v.report.Extends = old.N
	return nil
}

// complete checks that every export finished before p.FinishedBefore has
// its entry in the log, naming the first that has not.
func (v *verification) complete() error {
	if v.p.FinishedBefore.IsZero() {
		return nil
	}
	missing, err := v.store.ExportsMissingFromLedger(v.ctx, v.p.TenantID, v.finishedBefore())
	if err != nil || len(missing) == 0 {
		return err
	}
	first := slices.MinFunc(missing, finishOrder)
	return v.fail(-1, "export %s finished at %s but is not in the ledger (%s): unless a server stopped right after finishing it "+
		"(a server appends such exports when it starts, and within 30 seconds while it runs: verify again after that), entries were taken out",
		first.ID, runproof.FormatTime(*first.CompletedAt), suchExports(len(missing)))
}

// completeManifests checks that every completed ZIP export has its sealed
// manifest in the log: its proof.json proves that entry, appended before
// the ZIP was written. One missing was taken out (a cut tail that later
// exports filled again, say), however the rest holds.
func (v *verification) completeManifests() error {
	missing, err := v.store.SealedExportsMissingFromLedger(v.ctx, v.p.TenantID, ManifestEntryType)
	if err != nil || len(missing) == 0 {
		return err
	}
	first := slices.MinFunc(missing, finishOrder)
	return v.fail(-1, "export %s, a ZIP completed at %s, has no sealed manifest in the ledger, though its proof.json proves one: "+
		"entries were taken out (%s)", first.ID, runproof.FormatTime(*first.CompletedAt), suchExports(len(missing)))
}

// suchExports counts the exports a fault is found in, in words.
func suchExports(n int) string {
	if n == 1 {
		return "the only such export"
	}
	return fmt.Sprintf("%d such exports", n)
}

// completeAudit checks that every audit event of the tenant is in the log
// or waits for its entry: an event that is in neither was stored behind
// runproof's back, since storing one makes it wait in the same
// transaction.
func (v *verification) completeAudit() error {
	missing, err := v.store.AuditEventsMissingFromLedger(v.ctx, v.p.TenantID, 1)
	if err != nil || len(missing) == 0 {
		return err
	}
	return v.fail(-1, "audit event %s (occurred at %s) is neither in the ledger nor waiting for it: it was stored behind runproof's back",
		missing[0].ID, runproof.FormatTime(missing[0].OccurredAt))
}

// completeSteps checks each run's steps against how far its steps
// entries seal them: the store's count of the steps sealed (which the
// sealer starts from) must be the log's, and the run must hold every step
// sealed. Entries appended since Verify began count too.
func (v *verification) completeSteps() error {
	var since map[string]int64 // how far the entries since Verify began seal, by run; nil until needed
	for after := ""; ; {
		runs, err := v.store.StepsSealed(v.ctx, v.p.TenantID, after, int(v.p.PageSize))
		if err != nil {
			return err
		}
		for _, r := range runs {
			inLog := v.sealed[r.RunID]
			if r.Sealed != inLog && since == nil { // sealed since Verify began, perhaps
				if since, err = v.sealedSince(); err != nil {
					return err
				}
			}
			if n, ok := since[r.RunID]; ok {
				inLog = n
			}
			if r.Sealed != inLog { // or sealed between the two reads: read both again, once
				if r, inLog, err = v.sealedNow(after, r); err != nil {
					return err
				}
			}
			delete(v.sealed, r.RunID)
			switch {
			case r.Sealed != inLog:
				return v.fail(-1, "run %s: its steps are counted sealed up to %d, but its steps entries seal them up to %d: the count was changed behind runproof's back, "+
					"which keeps its steps from being sealed", r.RunID, r.Sealed, inLog)
			case inLog > r.Stored:
				return v.fail(-1, "run %s records %d steps, but %d are sealed: steps were taken out of it behind runproof's back", r.RunID, r.Stored, inLog)
			case inLog < r.Stored:
				v.report.Unsealed++
			}
			after = r.RunID
		}
		if len(runs) < int(v.p.PageSize) {
			break
		}
	}
	if len(v.sealed) > 0 {
		run := slices.Min(slices.Collect(maps.Keys(v.sealed)))
		return v.fail(-1, "the ledger seals %d steps of run %s, but the run and its count of sealed steps are gone: removed behind runproof's back",
			v.sealed[run], run)
	}
	return nil
}

// incidents checks every incident of the tenant against its inflection
// step (runproof.Incident.CheckInflection): incidents are not entries of
// the log, their inflection steps are sealed in it, so an incident changed
// behind runproof's back shows here.
func (v *verification) incidents() error {
	for offset := 0; ; offset += int(v.p.PageSize) {
		incs, err := v.store.ListIncidents(v.ctx, runproof.ListIncidentsParams{TenantID: v.p.TenantID,
			Limit: int(v.p.PageSize), Offset: offset})
		if err != nil {
			return err
		}
		for _, inc := range incs {
			// Its findings alone, without content: the first judged step
			// from its index on, which must be it.
			judged, err := v.store.ListSteps(v.ctx, runproof.ListStepsParams{TenantID: v.p.TenantID, RunID: inc.RunID,
				FromIndex: inc.InflectionStepIndex, Limit: 1, Judged: true})
			if err != nil {
				return err
			}
			var st runproof.Step // zero: not found
			if len(judged) == 1 && judged[0].Index == inc.InflectionStepIndex {
				st = judged[0]
			}
			var run runproof.Run // read only for an incident nothing contained, which its run tells
			if inc.ContainedAt == nil {
				if run, err = v.store.GetRun(v.ctx, v.p.TenantID, inc.RunID); err != nil && runproof.ErrorCode(err) != runproof.ENOTFOUND {
					return err
				}
			}
			if err := inc.CheckInflection(st, run); err != nil {
				return v.fail(-1, "%s", runproof.ErrorMessage(err))
			}
			v.report.Incidents++
		}
		if len(incs) < int(v.p.PageSize) {
			return nil
		}
	}
}

// sealedSince returns how far the steps entries appended since Verify
// began seal each run they name, from where the checked ones end.
func (v *verification) sealedSince() (map[string]int64, error) {
	more, err := v.store.LedgerEntries(v.ctx, v.p.TenantID, v.latest.Size, math.MaxInt64)
	if err != nil {
		return nil, err
	}
	out := map[string]int64{}
	for _, e := range more { // in index order: each range starts where the one before ends
		var se StepsEntry
		if e.Type != StepsEntryType || json.Unmarshal(e.Data, &se) != nil {
			continue
		}
		n, ok := out[se.RunID]
		if !ok {
			n = v.sealed[se.RunID]
		}
		if se.FromIndex == n {
			out[se.RunID] = se.ToIndex
		}
	}
	return out, nil
}

// sealedNow reads a run's seal (the run after after) and how far the
// log seals it, both again.
func (v *verification) sealedNow(after string, r runproof.RunSeal) (runproof.RunSeal, int64, error) {
	again, err := v.store.StepsSealed(v.ctx, v.p.TenantID, after, 1)
	if err != nil {
		return r, 0, err
	}
	if len(again) == 1 && again[0].RunID == r.RunID {
		r = again[0]
	}
	since, err := v.sealedSince()
	if err != nil {
		return r, 0, err
	}
	if n, ok := since[r.RunID]; ok {
		return r, n, nil
	}
	return r, v.sealed[r.RunID], nil
}

// finishedBefore is p.FinishedBefore to the microsecond, as times are kept.
func (v *verification) finishedBefore() time.Time { return runproof.Timestamp(v.p.FinishedBefore) }

// diffFields names the members of two JSON objects that differ.
func diffFields(stored, recomputed []byte) string {
	var a, b map[string]any
	if json.Unmarshal(stored, &a) != nil || json.Unmarshal(recomputed, &b) != nil {
		return "the stored leaf is not a JSON object"
	}
	var names []string
	for k := range a {
		if fmt.Sprint(a[k]) != fmt.Sprint(b[k]) {
			names = append(names, k)
		}
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			names = append(names, k)
		}
	}
	slices.Sort(names)
	if len(names) == 0 {
		return "same fields, other bytes"
	}
	return fmt.Sprintf("fields differ: %v", names)
}
