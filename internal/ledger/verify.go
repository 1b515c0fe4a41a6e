package ledger

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/runproof/runproof/internal/runproof"
)

// VerifyParams says which log Verify checks and against what.
type VerifyParams struct {
	TenantID string
	// VerifierKeys are the keys a checkpoint may be signed with. When empty,
	// each checkpoint is checked against the key recorded with it, which
	// shows that no note was altered but not who signed them.
	VerifierKeys []string
	// OriginPrefix as in Options (default DefaultOriginPrefix).
	OriginPrefix string
	// Checkpoint is an older signed checkpoint, kept outside the database
	// (by an auditor, say): Verify proves that the log still extends it.
	Checkpoint []byte
	// FinishedBefore, when set, makes every export of the tenant finished
	// before it required to be in the log.
	FinishedBefore time.Time
}

// Report is what Verify checked.
type Report struct {
	TenantID    string
	Entries     int64     // entries recomputed from the export records
	Checkpoints int64     // checkpoints whose signature and tree hash hold
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
}

func (m *Mismatch) Error() string {
	if m.Index < 0 {
		return fmt.Sprintf("ledger of tenant %q: %s", m.TenantID, m.Reason)
	}
	return fmt.Sprintf("ledger of tenant %q: entry %d: %s", m.TenantID, m.Index, m.Reason)
}

// verifyBatch is how many entries (and checkpoints) are read at once.
const verifyBatch = 1000

// Verify recomputes a tenant's whole log: every entry from its export
// record, every stored hash, and every checkpoint's signature and tree
// hash, in index order; then, when asked, consistency with an older
// checkpoint and the presence of every finished export. It stops at the
// first fault and returns it as a *Mismatch; other errors are failures to
// read. Memory grows with the log: two hashes per entry.
func Verify(ctx context.Context, store runproof.Store, p VerifyParams) (Report, error) {
	v := &verification{ctx: ctx, store: store, p: p, report: Report{TenantID: p.TenantID, OwnKeys: len(p.VerifierKeys) == 0}}
	if v.p.OriginPrefix == "" {
		v.p.OriginPrefix = DefaultOriginPrefix
	}
	v.reader = tlog.HashReaderFunc(func(indexes []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(indexes))
		for i, idx := range indexes {
			if idx < 0 || idx >= int64(len(v.hashes)) {
				return nil, fmt.Errorf("hash %d not computed", idx)
			}
			out[i] = v.hashes[idx]
		}
		return out, nil
	})
	err := v.run()
	return v.report, err
}

// Verify checks a tenant's log with this ledger's keys and origin.
func (l *Ledger) Verify(ctx context.Context, tenantID string, older []byte) (Report, error) {
	return Verify(ctx, l.store, VerifyParams{TenantID: tenantID, VerifierKeys: l.verifiers,
		OriginPrefix: l.prefix, Checkpoint: older})
}

type verification struct {
	ctx    context.Context
	store  runproof.Store
	p      VerifyParams
	report Report

	hashes   []tlog.Hash // recomputed stored hashes, by stored hash index
	reader   tlog.HashReader
	exports  map[string]bool             // finished exports in the log
	seen     map[string]bool             // entry type and export id of each entry
	pending  []runproof.LedgerCheckpoint // checkpoints read ahead, smallest first
	lastSize int64                       // size of the last checkpoint that held
	noMore   bool                        // every checkpoint has been read
}

func (v *verification) fail(index int64, format string, args ...any) error {
	return &Mismatch{TenantID: v.p.TenantID, Index: index, Reason: fmt.Sprintf(format, args...)}
}

func (v *verification) run() error {
	v.exports, v.seen = map[string]bool{}, map[string]bool{}
	var n int64 // entries checked
	for {
		entries, err := v.store.LedgerEntries(v.ctx, v.p.TenantID, n, n+verifyBatch)
		if err != nil {
			return err
		}
		if len(entries) == 0 {
			break
		}
		for k, e := range entries {
			if e.Index != n+int64(k) {
				return v.fail(n+int64(k), "missing: the next entry stored is %d", e.Index)
			}
		}
		stored, err := v.storedHashes(n, int64(len(entries)))
		if err != nil {
			return err
		}
		for _, e := range entries {
			if err := v.entry(e, stored); err != nil {
				return err
			}
			v.report.Entries++
			if err := v.checkpointsUpTo(e.Index + 1); err != nil {
				return err
			}
		}
		n += int64(len(entries))
	}
	if err := v.checkpointsUpTo(-1); err != nil {
		return err
	}
	if v.lastSize != n {
		return v.fail(v.lastSize, "entries from %d to %d are under no signed checkpoint", v.lastSize, n-1)
	}
	if err := v.older(n); err != nil {
		return err
	}
	return v.complete()
}

// storedHashes reads the stored hashes of entries [from, from+count), keyed
// by stored hash index. One that is missing is named by its entry.
func (v *verification) storedHashes(from, count int64) (map[int64]tlog.Hash, error) {
	lo, hi := tlog.StoredHashCount(from), tlog.StoredHashCount(from+count)
	indexes := make([]int64, 0, hi-lo)
	for i := lo; i < hi; i++ {
		indexes = append(indexes, i)
	}
	hs, err := v.store.LedgerHashes(v.ctx, v.p.TenantID, indexes)
	if runproof.ErrorCode(err) == runproof.ENOTFOUND {
		for i := from; i < from+count; i++ {
			lo, hi := tlog.StoredHashCount(i), tlog.StoredHashCount(i+1)
			for k := lo; k < hi; k++ {
				if _, err := v.store.LedgerHashes(v.ctx, v.p.TenantID, []int64{k}); runproof.ErrorCode(err) == runproof.ENOTFOUND {
					return nil, v.fail(i, "its stored hash %d is missing", k)
				}
			}
		}
	}
	if err != nil {
		return nil, err
	}
	out := make(map[int64]tlog.Hash, len(hs))
	for k, h := range hs {
		out[indexes[k]] = h
	}
	return out, nil
}

// entry recomputes one entry from its export record (a finished export's
// leaf, or a sealed manifest's from the request and the sealed event) and
// its stored hashes from the tree so far. A sealed manifest stays in the
// log whatever became of its export.
func (v *verification) entry(e runproof.LedgerEntry, stored map[int64]tlog.Hash) error {
	rec, err := v.store.GetExport(v.ctx, v.p.TenantID, e.ExportID)
	if runproof.ErrorCode(err) == runproof.ENOTFOUND {
		return v.fail(e.Index, "export %s is not among the export records", e.ExportID)
	} else if err != nil {
		return err
	}
	var data []byte
	switch e.Type {
	case EntryType:
		if data, err = leafBytes(rec); err != nil {
			return v.fail(e.Index, "export %s is %s, yet in the ledger", e.ExportID, rec.Status)
		}
	case ManifestEntryType:
		if data, err = manifestLeafBytes(rec); err != nil {
			return v.fail(e.Index, "export %s has no sealed manifest, yet its manifest is in the ledger", e.ExportID)
		}
	default:
		return v.fail(e.Index, "unknown entry type %q", e.Type)
	}
	if !bytes.Equal(data, e.Data) {
		return v.fail(e.Index, "does not match the record of export %s (%s)", e.ExportID, diffFields(e.Data, data))
	}
	key := e.Type + " " + e.ExportID
	if v.seen[key] {
		return v.fail(e.Index, "export %s is in the ledger twice", e.ExportID)
	}
	v.seen[key] = true
	if e.Type == EntryType {
		v.exports[e.ExportID] = true
	}
	hs, err := tlog.StoredHashes(e.Index, data, v.reader)
	if err != nil {
		return err
	}
	base := tlog.StoredHashIndex(0, e.Index)
	for k, h := range hs {
		if got, ok := stored[base+int64(k)]; !ok || got != h {
			return v.fail(e.Index, "stored hash %d differs from the one recomputed from the entry", base+int64(k))
		}
		v.hashes = append(v.hashes, h)
	}
	return nil
}

// checkpointsUpTo checks every checkpoint of size up to n (all of them
// when n < 0) against the tree recomputed so far.
func (v *verification) checkpointsUpTo(n int64) error {
	for {
		if len(v.pending) == 0 && !v.noMore {
			cps, err := v.store.LedgerCheckpoints(v.ctx, v.p.TenantID, v.lastSize, verifyBatch)
			if err != nil {
				return err
			}
			v.pending, v.noMore = cps, len(cps) < verifyBatch
		}
		if len(v.pending) == 0 || n >= 0 && v.pending[0].Size > n {
			return nil
		}
		c := v.pending[0]
		v.pending = v.pending[1:]
		if c.Size > v.report.Entries {
			return v.fail(v.report.Entries, "missing: a checkpoint is signed for %d entries, the ledger holds %d", c.Size, v.report.Entries)
		}
		if err := v.checkpoint(c); err != nil {
			return err
		}
	}
}

func (v *verification) checkpoint(c runproof.LedgerCheckpoint) error {
	at := v.lastSize // the first entry the checkpoint covers that no earlier one did
	keys := v.p.VerifierKeys
	if len(keys) == 0 {
		keys = []string{c.VerifierKey}
	}
	origin, tree, err := OpenCheckpoint(c.Note, keys...)
	if err != nil {
		return v.fail(at, "checkpoint of size %d: %v", c.Size, err)
	}
	if want := v.p.OriginPrefix + v.p.TenantID; origin != want {
		return v.fail(at, "checkpoint of size %d is signed for %q, not %q", c.Size, origin, want)
	}
	if tree.N != c.Size || tree.Hash != c.Hash {
		return v.fail(at, "checkpoint of size %d: its note signs size %d, hash %s; the row says hash %s", c.Size, tree.N, tree.Hash, tlog.Hash(c.Hash))
	}
	th, err := tlog.TreeHash(c.Size, v.reader)
	if err != nil {
		return err
	}
	if th != tree.Hash {
		return v.fail(at, "the entries do not hash to the signed checkpoint of size %d: one of entries %d to %d was changed", c.Size, at, c.Size-1)
	}
	v.lastSize = c.Size
	v.report.Checkpoints++
	v.report.Latest = tree
	return nil
}

// older proves that the log extends the checkpoint given from outside.
func (v *verification) older(n int64) error {
	if v.p.Checkpoint == nil {
		return nil
	}
	keys := v.p.VerifierKeys
	if len(keys) == 0 && v.report.Checkpoints > 0 {
		c, err := v.store.LedgerCheckpoint(v.ctx, v.p.TenantID, 0)
		if err != nil {
			return err
		}
		keys = []string{c.VerifierKey}
	}
	origin, old, err := OpenCheckpoint(v.p.Checkpoint, keys...)
	if err != nil {
		return v.fail(-1, "the given checkpoint: %v", err)
	}
	if want := v.p.OriginPrefix + v.p.TenantID; origin != want {
		return v.fail(-1, "the given checkpoint is signed for %q, not %q", origin, want)
	}
	if old.N > n {
		return v.fail(n, "missing: the given checkpoint is signed for %d entries, the ledger holds %d", old.N, n)
	}
	latest := v.report.Latest
	p, err := tlog.ProveTree(latest.N, old.N, v.reader)
	if err != nil {
		return err
	}
	if err := tlog.CheckTree(p, latest.N, latest.Hash, old.N, old.Hash); err != nil {
		return v.fail(-1, "the ledger does not extend the given checkpoint of size %d: an entry below %d was changed (%v)", old.N, old.N, err)
	}
	v.report.Extends = old.N
	return nil
}

// complete checks that every export finished before p.FinishedBefore is
// in the log.
func (v *verification) complete() error {
	if v.p.FinishedBefore.IsZero() {
		return nil
	}
	var missing []runproof.Export
	for offset := 0; ; offset += verifyBatch {
		recs, err := v.store.ListExports(v.ctx, runproof.ListExportsParams{TenantID: v.p.TenantID, Limit: verifyBatch, Offset: offset})
		if err != nil {
			return err
		}
		for _, r := range recs {
			if r.CompletedAt != nil && r.CompletedAt.Before(v.p.FinishedBefore) && !v.exports[r.ID] {
				missing = append(missing, r)
			}
		}
		if len(recs) < verifyBatch {
			break
		}
	}
	if len(missing) == 0 {
		return nil
	}
	sort.Slice(missing, func(i, j int) bool { return missing[i].CompletedAt.Before(*missing[j].CompletedAt) })
	return v.fail(-1, "export %s finished at %s but is not in the ledger (%d such exports)",
		missing[0].ID, runproof.FormatTime(*missing[0].CompletedAt), len(missing))
}

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
