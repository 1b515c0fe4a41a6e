package ledger_test

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/runproof/runproof/internal/ledger"
	"github.com/runproof/runproof/internal/runproof"
	"github.com/runproof/runproof/internal/store/storetest"
)

func TestEntryBytes(t *testing.T) {
	s := storetest.OpenSQLite(t)
	recs := finish(t, s, "acme", 0, 5)
	got, err := ledger.ExportEntryFor(recs[0])
	if err != nil {
		t.Fatal(err)
	}
	b, err := got.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	want := `{"bundle_id":"EVD-0000","bundle_type":"evidence",` +
		`"checksum":"` + runproof.DigestBytes([]byte("acme-x0000")) + `",` +
		`"created_at":"2026-01-02T15:04:05.123456Z","export_id":"acme-x0000","finished_at":"2026-01-02T15:04:05.124456Z",` +
		`"format":"json","origin":"HUMAN","requested_by":"key-1","run_id":"run-1","scope":"llm_run",` +
		`"size_bytes":100,"source_component":"api","status":"completed","tenant_id":"acme","type":"runproof.export.v1"}`
	if string(b) != want {
		t.Errorf("leaf bytes:\n got %s\nwant %s", b, want)
	}
	back, err := ledger.ParseExportEntry(b)
	if err != nil || back != got {
		t.Errorf("ParseExportEntry: %+v, %v", back, err)
	}

	failed, err := ledger.ExportEntryFor(recs[4])
	if err != nil {
		t.Fatal(err)
	}
	if failed.Status != "failed" || failed.FailureReason == "" || failed.Checksum != "" {
		t.Errorf("failed export's entry: %+v", failed)
	}
	pending := recs[0]
	pending.Status, pending.CompletedAt = runproof.ExportPending, nil
	if _, err := ledger.ExportEntryFor(pending); runproof.ErrorCode(err) != runproof.EINVALID {
		t.Errorf("entry of a pending export: %v, want EINVALID", err)
	}
}

// FuzzEntryBytes checks the leaf bytes Entry.Bytes writes against the
// RFC 8785 form runproof.Canonical makes of the same entry.
func FuzzEntryBytes(f *testing.F) {
	f.Add("acme", "acme-x0001", "completed", "", "sha256:ab", int64(100), "2026-01-02T15:04:05.123456Z")
	f.Add("a\"b\\c\u2028", "\x01é<>&\u007f", "failed", "disk\nfull\t", "", int64(0), "")
	f.Add("t", "x", "failed", "\xff", "", int64(1)<<60, "")
	f.Add("t", "x", "completed", "", "", int64(-1)<<53, "\U0001F600")
	f.Fuzz(func(t *testing.T, tenant, id, status, text, checksum string, size int64, at string) {
		e := ledger.ExportEntry{Type: ledger.ExportEntryType, ExportID: id, TenantID: tenant, Status: status, Scope: text,
			RunID: checksum, IncidentID: at, BundleType: id, Format: status, RequestedBy: text, Origin: tenant,
			SourceComponent: at, CorrelationID: text, ExportReason: text, PeriodStart: at, PeriodEnd: checksum,
			CreatedAt: at, FinishedAt: id, BundleID: checksum, Checksum: checksum, SizeBytes: size, FailureReason: text}
		got, err := e.Bytes()
		if err != nil {
			t.Fatal(err)
		}
		want, err := runproof.Canonical(e)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != string(want) {
			t.Fatalf("leaf bytes differ:\n got %s\nwant %s", got, want)
		}
	})
}

func TestNew(t *testing.T) {
	s := storetest.OpenSQLite(t)
	if _, err := ledger.New(s, ed25519.PrivateKey{1, 2}, keyName, ledger.Options{}); err == nil {
		t.Error("a short key was accepted")
	}
	if _, err := ledger.New(s, testKey, "two words", ledger.Options{}); err == nil {
		t.Error("a key name with a space was accepted")
	}
	l := newLedger(t, s)
	v, err := note.NewVerifier(l.VerifierKey())
	if err != nil {
		t.Fatal(err)
	}
	if v.Name() != keyName || !strings.HasPrefix(l.VerifierKey(), keyName+"+") {
		t.Errorf("verifier key %q", l.VerifierKey())
	}
}

func TestAppendProve(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s runproof.Store) {
		ctx := context.Background()
		l := newLedger(t, s)
		_, err := l.Checkpoint(ctx, "acme")
		if runproof.ErrorCode(err) != runproof.ENOTFOUND {
			t.Fatalf("checkpoint of an empty ledger: %v, want ENOTFOUND", err)
		}
		if idx, err := l.AppendBatch(ctx, "acme", nil); err != nil || len(idx) != 0 {
			t.Fatalf("empty batch on an empty ledger: %v, %v", idx, err)
		}

		recs := finish(t, s, "acme", 0, 8)
		appendEach(t, l, recs[:5])
		idx, err := l.AppendBatch(ctx, "acme", recs[3:]) // 3 and 4 are in already
		if err != nil {
			t.Fatal(err)
		}
		if want := []int64{3, 4, 5, 6, 7}; !equalInts(idx, want) {
			t.Errorf("batch indexes %v, want %v", idx, want)
		}
		before, err := s.LedgerCheckpoints(ctx, "acme", 0, 100)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := l.AppendBatch(ctx, "acme", nil); err != nil {
			t.Errorf("empty batch: %v", err)
		}
		if after, err := s.LedgerCheckpoints(ctx, "acme", 0, 100); err != nil || len(after) != len(before) {
			t.Errorf("an empty batch signed a checkpoint: %d checkpoints before, %d after (%v)", len(before), len(after), err)
		}
		if i, err := l.Append(ctx, recs[2]); err != nil || i != 2 {
			t.Errorf("appending export 2 again: %d, %v; want its index 2", i, err)
		}
		changed := recs[2]
		changed.Checksum = runproof.DigestBytes([]byte("other"))
		if _, err := l.Append(ctx, changed); runproof.ErrorCode(err) != runproof.ECONFLICT {
			t.Errorf("export 2 with other content: %v, want ECONFLICT", err)
		}
		if _, err := l.AppendBatch(ctx, "other", recs[:1]); runproof.ErrorCode(err) != runproof.EINVALID {
			t.Errorf("another tenant's export: %v, want EINVALID", err)
		}

		cp, err := l.Checkpoint(ctx, "acme")
		if err != nil {
			t.Fatal(err)
		}
		origin, tree, err := ledger.OpenCheckpoint(cp.Note, l.VerifierKey())
		if err != nil {
			t.Fatal(err)
		}
		if origin != "runproof/ledger/acme" || tree.N != 8 {
			t.Errorf("checkpoint: origin %q, size %d", origin, tree.N)
		}
		if _, _, err := ledger.OpenCheckpoint(cp.Note, newLedgerKey(t, s, otherKey).VerifierKey()); err == nil {
			t.Error("the checkpoint opened with another key")
		}

		for i, r := range recs {
			p, err := l.Prove(ctx, "acme", r.ID)
			if err != nil {
				t.Fatal(err)
			}
			if p.Index != int64(i) || p.Entry.ExportID != r.ID || p.Entry.Checksum != r.Checksum || p.TreeSize != 8 {
				t.Errorf("proof of %s: index %d, entry %+v", r.ID, p.Index, p.Entry)
			}
			if err := checkProof(p, l.VerifierKey()); err != nil {
				t.Errorf("proof of %s: %v", r.ID, err)
			}
		}
		_, err = l.Prove(ctx, "other", recs[0].ID)
		if runproof.ErrorCode(err) != runproof.ENOTFOUND {
			t.Errorf("proof of another tenant's export: %v, want ENOTFOUND", err)
		}
		// An export still being made, or finished but not appended yet,
		// has no proof yet: a conflict with its state, not a missing export.
		pending, _ := finished("acme", 20)
		if err := s.CreateExport(ctx, pending); err != nil {
			t.Fatal(err)
		}
		done := finish(t, s, "acme", 21, 1)[0]
		for id, says := range map[string]string{pending.ID: "still being made", done.ID: "finished but not in the ledger yet"} {
			if _, err := l.Prove(ctx, "acme", id); runproof.ErrorCode(err) != runproof.ECONFLICT || !strings.Contains(err.Error(), says) {
				t.Errorf("proof of %s: %v, want a conflict saying %q", id, err, says)
			}
		}

		// Every kept checkpoint is a prefix of every later one.
		for from := int64(1); from <= 8; from++ {
			if from == 6 || from == 7 {
				continue // the batch made one checkpoint, of size 8
			}
			c, err := l.ProveConsistency(ctx, "acme", from, 0)
			if err != nil {
				t.Fatalf("consistency %d → latest: %v", from, err)
			}
			_, oldTree, err := ledger.OpenCheckpoint([]byte(c.OldCheckpoint), l.VerifierKey())
			if err != nil {
				t.Fatal(err)
			}
			_, newTree, err := ledger.OpenCheckpoint([]byte(c.NewCheckpoint), l.VerifierKey())
			if err != nil {
				t.Fatal(err)
			}
			if err := tlog.CheckTree(c.TreeProof, newTree.N, newTree.Hash, oldTree.N, oldTree.Hash); err != nil {
				t.Errorf("consistency %d → %d: %v", from, newTree.N, err)
			}
		}
		// From a size no checkpoint is kept at (an auditor's, whose row
		// is gone, say): proven from the stored hashes, checked against
		// the tree of the first six leaves.
		c, err := l.ProveConsistency(ctx, "acme", 6, 8)
		if err != nil || c.OldSize != 6 || c.OldCheckpoint != "" {
			t.Fatalf("consistency from a size without checkpoint: %+v, %v", c, err)
		}
		entries, err := s.LedgerEntries(ctx, "acme", 0, 6)
		if err != nil {
			t.Fatal(err)
		}
		m := &memTree{}
		for i, e := range entries {
			hs, err := tlog.StoredHashes(int64(i), e.Data, m)
			if err != nil {
				t.Fatal(err)
			}
			m.hashes = append(m.hashes, hs...)
		}
		h6, err := tlog.TreeHash(6, m)
		if err != nil {
			t.Fatal(err)
		}
		_, newTree, err := ledger.OpenCheckpoint([]byte(c.NewCheckpoint), l.VerifierKey())
		if err != nil {
			t.Fatal(err)
		}
		if err := tlog.CheckTree(c.TreeProof, newTree.N, newTree.Hash, 6, h6); err != nil {
			t.Errorf("consistency 6 → 8: %v", err)
		}
		_, err = l.ProveConsistency(ctx, "acme", 1, 7)
		if runproof.ErrorCode(err) != runproof.ENOTFOUND {
			t.Errorf("consistency to a size without checkpoint: %v, want ENOTFOUND", err)
		}
		_, err = l.ProveConsistency(ctx, "acme", 9, 0)
		if runproof.ErrorCode(err) != runproof.EINVALID {
			t.Errorf("consistency from beyond the latest: %v, want EINVALID", err)
		}
		_, err = l.ProveConsistency(ctx, "acme", 3, 2)
		if runproof.ErrorCode(err) != runproof.EINVALID {
			t.Errorf("consistency backwards: %v, want EINVALID", err)
		}

		rep, err := verifyAs(ctx, s, l, "acme", nil)
		if err != nil {
			t.Fatal(err)
		}
		if rep.Entries != 8 || rep.Checkpoints != 6 || rep.Latest.N != 8 || rep.OwnKeys {
			t.Errorf("report %+v", rep)
		}
		first, err := s.LedgerCheckpoint(ctx, "acme", 1)
		if err != nil {
			t.Fatal(err)
		}
		if rep, err = verifyAs(ctx, s, l, "acme", first.Note); err != nil || rep.Extends != 1 {
			t.Errorf("verify extending checkpoint 1: %+v, %v", rep, err)
		}

		// Another key may sign later checkpoints once the ledger knows it.
		rotated, err := ledger.New(s, otherKey, "runproof.test2", ledger.Options{Verifiers: []string{l.VerifierKey()}})
		if err != nil {
			t.Fatal(err)
		}
		appendEach(t, rotated, finish(t, s, "acme", 8, 1))
		if _, err := verifyAs(ctx, s, rotated, "acme", nil); err != nil {
			t.Errorf("after a key change: %v", err)
		}
		_, err = l.Append(ctx, finish(t, s, "acme", 9, 1)[0])
		if !errors.Is(err, ledger.ErrDiverged) || runproof.ErrorCode(err) != runproof.ECONFLICT ||
			!strings.Contains(err.Error(), `the latest checkpoint of the ledger of tenant "acme" is signed by key`) || strings.Contains(err.Error(), "no longer matches") || strings.Contains(err.Error(), "\n") {
			t.Errorf("append over a checkpoint signed by an unknown key: %q (%s), want ErrDiverged, a conflict that says which key, in one line", err, runproof.ErrorCode(err))
		}
		if err := l.Ready(ctx, "acme"); runproof.ErrorCode(err) != runproof.ECONFLICT || errors.Is(err, ledger.ErrDiverged) ||
			!strings.Contains(err.Error(), "which this runproof does not know") {
			t.Errorf("ready over a checkpoint signed by an unknown key: %v", err)
		}
		if err := rotated.Ready(ctx, "acme"); err != nil {
			t.Errorf("ready with the key: %v", err)
		}
	})
}

func equalInts(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestSync: the exports an append missed are appended by the next Sync,
// oldest first, a batch under each checkpoint, and no other tenant's.
func TestSync(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s runproof.Store) {
		ctx := context.Background()
		l, err := ledger.New(s, testKey, keyName, ledger.Options{Now: func() time.Time { return t0 }, SyncBatch: 3})
		if err != nil {
			t.Fatal(err)
		}
		recs := finish(t, s, "acme", 0, 9)
		finish(t, s, "other", 0, 2)
		appendEach(t, l, []runproof.Export{recs[1], recs[4]})
		n, err := l.Sync(ctx, "acme")
		if err != nil || n != 7 {
			t.Fatalf("sync: %d, %v; want 7 appended", n, err)
		}
		entries, err := s.LedgerEntries(ctx, "acme", 0, 100)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, e := range entries {
			got = append(got, e.RecordID)
		}
		want := []string{"acme-x0001", "acme-x0004", "acme-x0000", "acme-x0002", "acme-x0003", "acme-x0005",
			"acme-x0006", "acme-x0007", "acme-x0008"}
		if !slices.Equal(got, want) {
			t.Errorf("entries after sync: %v, want %v", got, want)
		}
		for _, size := range []int64{2, 5, 8, 9} { // one checkpoint per append
			if _, err := s.LedgerCheckpoint(ctx, "acme", size); err != nil {
				t.Errorf("checkpoint of size %d: %v", size, err)
			}
		}
		if n, err := l.Sync(ctx, "acme"); err != nil || n != 0 {
			t.Errorf("second sync: %d, %v; want nothing to append", n, err)
		}
		if _, err := s.LedgerCheckpoint(ctx, "other", 0); runproof.ErrorCode(err) != runproof.ENOTFOUND {
			t.Errorf("the other tenant's log: %v, want none", err)
		}
		var progress []string
		rep, err := ledger.Verify(ctx, s, ledger.VerifyParams{TenantID: "acme", VerifierKeys: []string{l.VerifierKey()},
			FinishedBefore: t0.Add(time.Hour), PageSize: 4,
			Progress: func(done, total int64) { progress = append(progress, fmt.Sprintf("%d/%d", done, total)) }})
		if err != nil || rep.Entries != 9 {
			t.Errorf("verify after sync: %+v, %v", rep, err)
		}
		if want := []string{"4/9", "8/9", "9/9"}; !slices.Equal(progress, want) {
			t.Errorf("progress %v, want %v", progress, want)
		}
		// The same key given twice (its PEM and its note key, say) is one key.
		twice := ledger.VerifyParams{TenantID: "acme", VerifierKeys: []string{l.VerifierKey(), l.VerifierKey()}, AllSignatures: true}
		if _, err := ledger.Verify(ctx, s, twice); err != nil {
			t.Errorf("verify with the key given twice: %v", err)
		}
	})
}

// TestRotatedByAnotherProcess: a process that rotated the signing key
// appends under the new key; a running ledger that knew only the old key
// refuses to sign over that head, unless NewVerifiers tells it the new
// key, and then appends on.
func TestRotatedByAnotherProcess(t *testing.T) {
	ctx := context.Background()
	s := storetest.OpenSQLite(t)
	running := newLedger(t, s)
	recs := finish(t, s, "acme", 0, 3)
	if _, err := running.Append(ctx, recs[0]); err != nil {
		t.Fatal(err)
	}
	rotated, err := ledger.New(s, otherKey, keyName, ledger.Options{Verifiers: []string{running.VerifierKey()}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rotated.Append(ctx, recs[1]); err != nil {
		t.Fatal(err)
	}
	if _, err := running.Append(ctx, recs[2]); !errors.Is(err, ledger.ErrDiverged) {
		t.Fatalf("append over a head signed by an unknown key: %v, want ErrDiverged", err)
	}
	asked := 0
	learning, err := ledger.New(s, testKey, keyName, ledger.Options{NewVerifiers: func() ([]string, error) {
		asked++
		return []string{rotated.VerifierKey()}, nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := learning.Append(ctx, recs[2]); err != nil {
		t.Fatalf("append once told the new key: %v", err)
	}
	if _, err := verifyAs(ctx, s, learning, "acme", nil); err != nil {
		t.Fatal(err)
	}
	if asked == 0 {
		t.Error("NewVerifiers was never asked")
	}

	// Two exports at once, each asking for the new key, both learn it,
	// though only one of them adds it.
	if _, err := rotated.Append(ctx, finish(t, s, "acme", 3, 1)[0]); err != nil {
		t.Fatal(err)
	}
	var asking sync.WaitGroup
	asking.Add(2)
	both, err := ledger.New(s, testKey, keyName, ledger.Options{NewVerifiers: func() ([]string, error) {
		asking.Done()
		asking.Wait() // both have asked before either keeps the key
		return []string{rotated.VerifierKey()}, nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	var ready sync.WaitGroup
	errs := make([]error, 2)
	for i := range errs {
		ready.Go(func() { errs[i] = both.Ready(ctx, "acme") })
	}
	ready.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Errorf("ready at once over a head signed by a key both learn: %v", err)
	}
}

// unreadableHashes fails the reads of stored hashes inside an append, as a
// database that went away would, when fail is set.
type unreadableHashes struct {
	runproof.Store
	fail bool
}

func (u *unreadableHashes) AppendLedger(ctx context.Context, tenantID string, fn func(runproof.LedgerState) (runproof.LedgerAppend, error)) error {
	return u.Store.AppendLedger(ctx, tenantID, func(st runproof.LedgerState) (runproof.LedgerAppend, error) {
		if u.fail {
			st.ReadHashes = func([]int64) ([][runproof.LedgerHashSize]byte, error) {
				return nil, runproof.Errorf(runproof.EUNAVAILABLE, "database unavailable")
			}
		}
		return fn(st)
	})
}

// TestAppendUnreadable: an append that cannot read the stored tree fails as
// unavailable, to be retried, not as a ledger that diverged.
func TestAppendUnreadable(t *testing.T) {
	s := &unreadableHashes{Store: storetest.OpenSQLite(t)}
	l := newLedger(t, s)
	recs := finish(t, s, "acme", 0, 2)
	appendEach(t, l, recs[:1])
	s.fail = true
	_, err := l.AppendBatch(context.Background(), "acme", recs[1:])
	if errors.Is(err, ledger.ErrDiverged) || runproof.ErrorCode(err) != runproof.EUNAVAILABLE {
		t.Fatalf("append with the database unavailable: %v (code %s), want unavailable, not diverged", err, runproof.ErrorCode(err))
	}
	s.fail = false
	appendEach(t, l, recs[1:])
}
