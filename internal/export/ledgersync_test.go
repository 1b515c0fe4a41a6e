package export_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/runproof/runproof/internal/artifact"
	"github.com/runproof/runproof/internal/demo"
	"github.com/runproof/runproof/internal/export"
	"github.com/runproof/runproof/internal/ledger"
	"github.com/runproof/runproof/internal/runproof"
	"github.com/runproof/runproof/internal/signing"
	"github.com/runproof/runproof/internal/store/storetest"
)

// flakyLedger fails its first appends of finished exports, as a ledger
// whose database hiccups would.
type flakyLedger struct {
	*ledger.Ledger
	failures int
}

func (f *flakyLedger) Append(ctx context.Context, rec runproof.Export) (int64, error) {
	if f.failures > 0 {
		f.failures--
		return 0, errors.New("connection reset")
	}
	return f.Ledger.Append(ctx, rec)
}

// ledgerAndDir returns a ledger over store with a key of its own, and an
// artifact directory with its root.
func ledgerAndDir(t *testing.T, store runproof.Store) (*ledger.Ledger, *artifact.Dir, string) {
	t.Helper()
	keys, err := signing.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	l, err := ledger.New(store, keys.Active().Private, keys.Active().ID, ledger.Options{})
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	dir, err := artifact.NewDir(root)
	if err != nil {
		t.Fatal(err)
	}
	return l, dir, root
}

// TestLedgerCatchesUp: an export whose ledger append fails still stands,
// and the tenant's log gets it before the next export, in order.
func TestLedgerCatchesUp(t *testing.T) {
	storetest.Each(t, func(t *testing.T, store runproof.Store) {
		ctx := context.Background()
		inc := seeded(t, store)
		l, dir, _ := ledgerAndDir(t, store)
		flaky := &flakyLedger{Ledger: l, failures: 1}
		e := export.New(store, dir, export.Options{Ledger: flaky, NewID: ids(2), Now: func() time.Time { return fixed }})
		first, err := e.Export(ctx, demo.Tenant, auditor, export.Input{IncidentID: inc.ID, Format: runproof.FormatJSON})
		if err != nil || first.Status != runproof.ExportCompleted {
			t.Fatalf("export with a failing ledger append: %+v, %v", first, err)
		}
		if _, err := l.Prove(ctx, demo.Tenant, first.ID); runproof.ErrorCode(err) != runproof.ECONFLICT {
			t.Fatalf("the first export is in the ledger already: %v", err)
		}
		second, err := e.Export(ctx, demo.Tenant, auditor, export.Input{IncidentID: inc.ID, Format: runproof.FormatCSV})
		if err != nil {
			t.Fatal(err)
		}
		p1, err := l.Prove(ctx, demo.Tenant, first.ID)
		if err != nil {
			t.Fatalf("the first export was not caught up: %v", err)
		}
		p2, err := l.Prove(ctx, demo.Tenant, second.ID)
		if err != nil || p1.Index >= p2.Index {
			t.Fatalf("indexes %d, %d (%v)", p1.Index, p2.Index, err)
		}
		if _, err := ledger.Verify(ctx, store, ledger.VerifyParams{TenantID: demo.Tenant, VerifierKeys: l.VerifierKeys()}); err != nil {
			t.Fatalf("ledger verify after catching up: %v", err)
		}
	})
}

// unreadAfterEnd is a store whose reads of an export fail, once or until
// told, just after the first export's end is recorded, as a database that
// drops for a moment or for longer.
type unreadAfterEnd struct {
	runproof.Store
	fails  int32        // reads to fail
	ended  atomic.Bool  // an export's end is recorded
	failed atomic.Int32 // reads failed since
}

func (s *unreadAfterEnd) AppendExportEvent(ctx context.Context, ev runproof.ExportEvent) error {
	err := s.Store.AppendExportEvent(ctx, ev)
	if err == nil && ev.Kind == runproof.ExportEventCompleted {
		s.ended.Store(true)
	}
	return err
}

func (s *unreadAfterEnd) GetExport(ctx context.Context, tenantID, id string) (runproof.Export, error) {
	if s.ended.Load() && s.failed.Add(1) <= s.fails {
		return runproof.Export{}, runproof.Errorf(runproof.EUNAVAILABLE, "the database cannot be reached")
	}
	return s.Store.GetExport(ctx, tenantID, id)
}

// TestEndNotReadBack: an export whose end is recorded but cannot be read
// back at once is read again; one still unread after the retries is
// completed to its caller all the same, not failed (which would have it
// asked again, a second export), and enters the ledger before the next
// export.
func TestEndNotReadBack(t *testing.T) {
	for _, fails := range []int32{1, 3} {
		store := storetest.OpenSQLite(t)
		ctx := context.Background()
		inc := seeded(t, store)
		l, dir, _ := ledgerAndDir(t, store)
		e := export.New(&unreadAfterEnd{Store: store, fails: fails}, dir, export.Options{Ledger: l, NewID: ids(2), Now: func() time.Time { return fixed },
			Backoff: []time.Duration{time.Millisecond}}) // two tries
		first, err := e.Export(ctx, demo.Tenant, auditor, export.Input{IncidentID: inc.ID, Format: runproof.FormatJSON})
		if err != nil || first.Status != runproof.ExportCompleted || first.Checksum == "" {
			t.Fatalf("%d reads failed: %+v, %v; want it completed", fails, first, err)
		}
		if behind := e.Stats().LedgerBehind; behind != int(max(0, min(fails-1, 1))) {
			t.Errorf("%d reads failed: %d tenants behind", fails, behind)
		}
		if fails > 1 { // not read back: in the ledger after the next export
			if _, err := e.Export(ctx, demo.Tenant, auditor, export.Input{IncidentID: inc.ID, Format: runproof.FormatCSV}); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := l.Prove(ctx, demo.Tenant, first.ID); err != nil {
			t.Fatalf("%d reads failed: the export is not in the ledger: %v", fails, err)
		}
	}
}

// TestRecover: what a process killed in the middle of exports leaves
// behind is ended by Recover: an export pending for over an hour becomes
// failed and its artifact goes, stale temporary files go, and a finished
// export the ledger missed is appended. A recent pending export is left
// to the process making it.
func TestRecover(t *testing.T) {
	storetest.Each(t, func(t *testing.T, store runproof.Store) {
		ctx := context.Background()
		inc := seeded(t, store)
		l, dir, root := ledgerAndDir(t, store)
		now := fixed.Add(3 * time.Hour)
		request := func(id string, at time.Time) runproof.ExportRequest {
			r := runproof.ExportRequest{TenantID: demo.Tenant, ID: id, Scope: runproof.ScopeLLMRun, RunID: inc.RunID,
				IncidentID: inc.ID, BundleType: runproof.BundleEvidence, Format: runproof.FormatJSON, RequestedBy: "key-1",
				Origin: runproof.OriginHuman, SourceComponent: "api", CreatedAt: at}
			if err := store.CreateExport(ctx, r); err != nil {
				t.Fatal(err)
			}
			return r
		}
		// Killed between the artifact's rename and the completed event.
		abandoned := request("x-abandoned", fixed)
		w, err := dir.Create(demo.Tenant + "/x-abandoned.json")
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte("{}"))
		if err := w.Commit(); err != nil {
			t.Fatal(err)
		}
		// Killed while writing an artifact: its temporary file stays.
		if _, err := dir.Create(demo.Tenant + "/x-other.json"); err != nil {
			t.Fatal(err)
		}
		temps, _ := filepath.Glob(filepath.Join(root, demo.Tenant, ".tmp-*"))
		for _, tmp := range temps {
			os.Chtimes(tmp, fixed, fixed)
		}
		// Killed between the completed event and the ledger append.
		request("x-unledgered", fixed)
		if err := store.AppendExportEvent(ctx, runproof.ExportEvent{TenantID: demo.Tenant, ExportID: "x-unledgered",
			Kind: runproof.ExportEventCompleted, At: fixed.Add(time.Second), Checksum: runproof.DigestBytes(nil),
			Artifact: demo.Tenant + "/x-unledgered.json"}); err != nil {
			t.Fatal(err)
		}
		// Still being made.
		request("x-recent", now.Add(-time.Minute))

		e := export.New(store, dir, export.Options{Ledger: l, Now: func() time.Time { return now }})
		n, err := e.Recover(ctx, demo.Tenant)
		if err != nil || n != 1 {
			t.Fatalf("recover: %d, %v; want 1 export ended", n, err)
		}
		rec, err := store.GetExport(ctx, demo.Tenant, abandoned.ID)
		if err != nil || rec.Status != runproof.ExportFailed || !strings.Contains(rec.FailureReason, "interrupted") {
			t.Errorf("the abandoned export: %+v, %v", rec, err)
		}
		if _, err := dir.Open(demo.Tenant + "/x-abandoned.json"); runproof.ErrorCode(err) != runproof.ENOTFOUND {
			t.Errorf("the abandoned export's artifact is still there: %v", err)
		}
		if left, _ := filepath.Glob(filepath.Join(root, demo.Tenant, ".tmp-*")); len(left) != 0 {
			t.Errorf("temporary files left: %v", left)
		}
		if rec, _ := store.GetExport(ctx, demo.Tenant, "x-recent"); rec.Status != runproof.ExportPending {
			t.Errorf("the recent export was ended: %+v", rec)
		}
		for _, id := range []string{abandoned.ID, "x-unledgered"} {
			if _, err := l.Prove(ctx, demo.Tenant, id); err != nil {
				t.Errorf("%s is not in the ledger: %v", id, err)
			}
		}
		if _, err := ledger.Verify(ctx, store, ledger.VerifyParams{TenantID: demo.Tenant, FinishedBefore: now}); err != nil {
			t.Errorf("ledger verify after recovery: %v", err)
		}
		if n, err := e.Recover(ctx, demo.Tenant); err != nil || n != 0 {
			t.Errorf("second recover: %d, %v", n, err)
		}
	})
}
