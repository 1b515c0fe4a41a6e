package export_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/runproof/runproof/internal/demo"
	"github.com/runproof/runproof/internal/export"
	"github.com/runproof/runproof/internal/runproof"
	"github.com/runproof/runproof/internal/store/storetest"
)

// leaseWatch is a store that notes every lease written.
type leaseWatch struct {
	runproof.Store
	away   atomic.Bool   // renewals fail, as with a database away
	slow   time.Duration // how long a lease takes to write
	mu     sync.Mutex
	writes int
	until  map[string]time.Time // the latest lease of each export
}

func (w *leaseWatch) LeaseExport(ctx context.Context, tenantID, exportID string, until time.Time) error {
	if w.away.Load() {
		return runproof.Errorf(runproof.EUNAVAILABLE, "the database cannot be reached")
	}
	time.Sleep(w.slow)
	err := w.Store.LeaseExport(ctx, tenantID, exportID, until)
	if err == nil { // noted once it is stored
		w.mu.Lock()
		w.writes++
		w.until[exportID] = until
		w.mu.Unlock()
	}
	return err
}

func (w *leaseWatch) counts() (int, map[string]time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	until := make(map[string]time.Time, len(w.until))
	for id, u := range w.until {
		until[id] = u
	}
	return w.writes, until
}

// TestLease: an export being made keeps its lease while its process lives,
// however far the clock moves, and one whose process stopped is ended by
// Recover once its lease has run out, long before AbandonedAfter. No
// renewal follows an export's end.
func TestLease(t *testing.T) {
	s := storetest.OpenSQLite(t)
	ctx := context.Background()
	inc := seeded(t, s)
	store := &leaseWatch{Store: s, until: map[string]time.Time{}}
	dir, _ := tempArtifacts(t)
	var clock atomic.Int64 // how far past fixed
	now := func() time.Time { return fixed.Add(time.Duration(clock.Load())) }

	// A process that stopped left this one, its lease written last at fixed.
	dead := runproof.ExportRequest{TenantID: demo.Tenant, ID: "x-dead", Scope: runproof.ScopeLLMRun, IncidentID: inc.ID,
		RunID: inc.RunID, BundleType: runproof.BundleEvidence, Format: runproof.FormatJSON, RequestedBy: "key-1",
		Origin: runproof.OriginHuman, SourceComponent: "api", CreatedAt: fixed}
	if err := s.CreateExport(ctx, dead); err != nil {
		t.Fatal(err)
	}
	if err := s.LeaseExport(ctx, demo.Tenant, dead.ID, fixed.Add(export.LeaseFor)); err != nil {
		t.Fatal(err)
	}

	arts := newBlocking(dir)
	maker := export.New(store, arts, export.Options{Now: now, NewID: func() string { return "x-live" }, LeaseRenewal: time.Millisecond})
	done := make(chan error, 1)
	go func() {
		_, err := maker.Export(ctx, demo.Tenant, auditor, export.Input{IncidentID: inc.ID, Format: runproof.FormatJSON})
		done <- err
	}()
	<-arts.entered
	clock.Store(int64(2 * export.LeaseFor))
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		if _, until := store.counts(); until["x-live"].After(now()) {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("the export being made did not renew its lease past %v: %v", now(), until["x-live"])
		}
	}

	other := export.New(s, dir, export.Options{Now: now})
	if n, err := other.Recover(ctx, demo.Tenant); err != nil || n != 1 {
		t.Fatalf("recover: %d, %v; want the dead export ended", n, err)
	}
	for id, want := range map[string]runproof.ExportStatus{"x-dead": runproof.ExportFailed, "x-live": runproof.ExportPending} {
		rec, err := s.GetExport(ctx, demo.Tenant, id)
		if err != nil || rec.Status != want {
			t.Errorf("%s: %+v, %v; want %s", id, rec, err, want)
		}
		if want == runproof.ExportFailed && !strings.Contains(rec.FailureReason, "interrupted") {
			t.Errorf("%s failed as %q", id, rec.FailureReason)
		}
	}

	// Its lease runs out while the database is away; its own process, which
	// knows it alive, does not end it.
	store.away.Store(true)
	clock.Add(int64(2 * export.LeaseFor))
	if n, err := maker.Recover(ctx, demo.Tenant); err != nil || n != 0 {
		t.Fatalf("recover by the process making the export: %d, %v; want none ended", n, err)
	}
	store.away.Store(false)

	close(arts.release)
	if err := <-done; err != nil {
		t.Fatalf("the live export: %v", err)
	}
	writes, _ := store.counts()
	time.Sleep(20 * time.Millisecond) // twenty renewals' time
	if later, _ := store.counts(); later != writes {
		t.Errorf("%d leases written after the export ended", later-writes)
	}
}

// TestLeasedWhenAnswered: an export started in the background has its
// lease written by the time it is answered, even when the database is
// slow to take it: a process that dies right after answering leaves an
// export that Recover ends once the lease runs out, not an hour later.
func TestLeasedWhenAnswered(t *testing.T) {
	s := storetest.OpenSQLite(t)
	ctx := context.Background()
	inc := seeded(t, s)
	store := &leaseWatch{Store: s, until: map[string]time.Time{}, slow: 50 * time.Millisecond}
	arts, _ := tempArtifacts(t)
	e := export.New(store, arts, export.Options{Now: func() time.Time { return fixed }})
	rec, err := e.Start(ctx, ctx, demo.Tenant, auditor, export.Input{IncidentID: inc.ID, Format: runproof.FormatJSON})
	if err != nil {
		t.Fatal(err)
	}
	if _, until := store.counts(); !until[rec.ID].Equal(fixed.Add(export.LeaseFor)) {
		t.Errorf("answered with the lease %v, want one to %v", until[rec.ID], fixed.Add(export.LeaseFor))
	}
	if err := e.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	// Without its lease, an export is not answered, nor made.
	store.away.Store(true)
	if _, err := e.Start(ctx, ctx, demo.Tenant, auditor, export.Input{IncidentID: inc.ID, Format: runproof.FormatJSON}); runproof.ErrorCode(err) != runproof.EUNAVAILABLE {
		t.Errorf("started without its lease: %v, want unavailable", err)
	}
	if n := e.Making(); n != 0 {
		t.Errorf("%d exports being made, want none", n)
	}
}

// fullOutcomes is a store whose disk is full when an export's outcome is
// recorded, while full holds; then, while lost holds, it records the
// outcome but answers as if it timed out.
type fullOutcomes struct {
	runproof.Store
	full, lost atomic.Bool
}

func (f *fullOutcomes) AppendExportEvent(ctx context.Context, ev runproof.ExportEvent) error {
	if ev.Kind != runproof.ExportEventFailed && ev.Kind != runproof.ExportEventCompleted {
		return f.Store.AppendExportEvent(ctx, ev)
	}
	if f.full.Load() {
		return runproof.Errorf(runproof.EUNAVAILABLE, "the server's disk is full")
	}
	err := f.Store.AppendExportEvent(ctx, ev)
	if err == nil && f.lost.CompareAndSwap(true, false) {
		return fmt.Errorf("append export event: %w", context.DeadlineExceeded)
	}
	return err
}

// TestOutcomeRecordedLate: an export whose outcome the database does not
// take, its disk full for longer than the outcome's retries, keeps its
// lease, so that it is not taken for interrupted, and its outcome is
// recorded once the database takes it: the export completes, its artifact
// kept, also when the write that records it is answered as failed though
// it was committed (a timeout, a connection lost), and the next try is
// refused as a second end.
func TestOutcomeRecordedLate(t *testing.T) {
	s := storetest.OpenSQLite(t)
	ctx := context.Background()
	inc := seeded(t, s)
	store := &fullOutcomes{Store: s}
	store.full.Store(true)
	arts, _ := tempArtifacts(t)
	e := export.New(store, arts, export.Options{Now: func() time.Time { return fixed }, NewID: func() string { return "x-late" },
		LeaseRenewal: 5 * time.Millisecond, Backoff: []time.Duration{time.Millisecond}})
	if _, err := e.Export(ctx, demo.Tenant, auditor, export.Input{IncidentID: inc.ID, Format: runproof.FormatJSON}); runproof.ErrorCode(err) != runproof.EUNAVAILABLE {
		t.Fatalf("export with the disk full: %v, want it unavailable", err)
	}
	if n, err := e.Recover(ctx, demo.Tenant); err != nil || n != 0 {
		t.Fatalf("recover: %d ended, %v; want none: the export's end is known here", n, err)
	}
	store.lost.Store(true)
	store.full.Store(false)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		rec, err := s.GetExport(ctx, demo.Tenant, "x-late")
		if err != nil {
			t.Fatal(err)
		}
		if rec.Status == runproof.ExportCompleted && e.Making() == 0 { // and its lease has let go of it
			if len(download(t, e, rec)) == 0 {
				t.Fatal("the artifact is empty")
			}
			break
		}
		if rec.Status == runproof.ExportFailed || time.Now().After(deadline) {
			t.Fatalf("export %s (%q), want it completed once the disk has room", rec.Status, rec.FailureReason)
		}
	}
}

// endedFirst is a store in which another process ends an export, failed,
// just before its own end is recorded, and the read that follows fails
// once.
type endedFirst struct {
	runproof.Store
	readFails atomic.Bool
}

func (s *endedFirst) AppendExportEvent(ctx context.Context, ev runproof.ExportEvent) error {
	if ev.Kind == runproof.ExportEventCompleted {
		other := ev
		other.Kind, other.Reason, other.Checksum, other.SizeBytes, other.BundleID, other.Artifact =
			runproof.ExportEventFailed, "interrupted: the process making it stopped before it was done; ask for it again", "", 0, "", ""
		if err := s.Store.AppendExportEvent(ctx, other); err != nil {
			return err
		}
		s.readFails.Store(true)
	}
	return s.Store.AppendExportEvent(ctx, ev)
}

func (s *endedFirst) GetExport(ctx context.Context, tenantID, id string) (runproof.Export, error) {
	if s.readFails.CompareAndSwap(true, false) {
		return runproof.Export{}, runproof.Errorf(runproof.EUNAVAILABLE, "the database cannot be reached")
	}
	return s.Store.GetExport(ctx, tenantID, id)
}

// TestEndedByAnotherUnread: an export whose end is refused because
// another process ended it, and which cannot read whose end that is, is
// not taken for completed: it fails to its caller.
func TestEndedByAnotherUnread(t *testing.T) {
	s := storetest.OpenSQLite(t)
	ctx := context.Background()
	inc := seeded(t, s)
	arts, _ := tempArtifacts(t)
	e := export.New(&endedFirst{Store: s}, arts, export.Options{Now: func() time.Time { return fixed }, Backoff: []time.Duration{time.Millisecond}})
	rec, err := e.Export(ctx, demo.Tenant, auditor, export.Input{IncidentID: inc.ID, Format: runproof.FormatJSON})
	if err == nil {
		t.Fatalf("export ended by another taken for its own: %+v", rec)
	}
	if st := e.Stats(); st.Completed != 0 {
		t.Errorf("stats %+v, want no export counted completed", st)
	}
}
