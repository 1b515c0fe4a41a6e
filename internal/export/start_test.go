package export_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/runproof/runproof/internal/export"
	"github.com/runproof/runproof/internal/runproof"
	"github.com/runproof/runproof/internal/store/storetest"
)

// heldStore holds every read of steps until released.
type heldStore struct {
	runproof.Store
	reading chan struct{} // a read began
	release chan struct{}
}

func (h *heldStore) ListSteps(ctx context.Context, p runproof.ListStepsParams) ([]runproof.Step, error) {
	select {
	case h.reading <- struct{}{}:
	default:
	}
	select {
	case <-h.release:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return h.Store.ListSteps(ctx, p)
}

// heldExporter returns an exporter that makes one export at a time over a
// store whose reads of steps it holds, and the input of an export of a
// run of that store.
func heldExporter(t *testing.T) (*export.Exporter, *heldStore, export.Input) {
	t.Helper()
	store := storetest.OpenSQLite(t)
	_, runID := longRun(t, store, 5)
	h := &heldStore{Store: store, reading: make(chan struct{}, 1), release: make(chan struct{})}
	arts, _ := tempArtifacts(t)
	e := export.New(h, arts, export.Options{Concurrent: 1, Now: func() time.Time { return fixed }})
	return e, h, export.Input{RunID: runID, Format: runproof.FormatJSON}
}

// TestStartAnswersAtOnce: an export started in the background is recorded
// and answered at once even while every place for exports is taken; it
// waits its turn in the background, and is recorded as interrupted when
// the background ends first.
func TestStartAnswersAtOnce(t *testing.T) {
	ctx := context.Background()
	e, h, in := heldExporter(t)

	first, err := e.Start(ctx, ctx, "acme", auditor, in)
	if err != nil {
		t.Fatal(err)
	}
	<-h.reading // the first holds the only place
	queued := make(chan []runproof.Export, 1)
	go func() {
		var recs []runproof.Export
		for range 4 { // four wait for each place
			rec, err := e.Start(ctx, ctx, "acme", auditor, in)
			if err != nil {
				t.Error(err)
			}
			recs = append(recs, rec)
		}
		queued <- recs
	}()
	var waiting []runproof.Export
	select {
	case waiting = <-queued:
	case <-time.After(10 * time.Second):
		t.Fatal("Start waited for a place instead of answering")
	}
	for _, rec := range append(waiting, first) {
		if rec.Status != runproof.ExportPending {
			t.Errorf("started as %s, want pending", rec.Status)
		}
	}
	if _, err := e.Start(ctx, ctx, "acme", auditor, in); runproof.ErrorCode(err) != runproof.EUNAVAILABLE {
		t.Errorf("a fifth waiting for the one place: %v, want EUNAVAILABLE", err)
	}
	close(h.release)
	if err := e.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{first.ID, waiting[0].ID, waiting[3].ID} {
		if rec, err := e.Get(ctx, "acme", id); err != nil || rec.Status != runproof.ExportCompleted {
			t.Errorf("export %s is %s (%v), want completed", id, rec.Status, err)
		}
	}

	// The background ends while an export waits its turn, and while one is made.
	h.release, h.reading = make(chan struct{}), make(chan struct{}, 1)
	bg, stop := context.WithCancel(ctx)
	making, err := e.Start(ctx, bg, "acme", auditor, in)
	if err != nil {
		t.Fatal(err)
	}
	<-h.reading
	queuedToo, err := e.Start(ctx, bg, "acme", auditor, in)
	if err != nil {
		t.Fatal(err)
	}
	stop()
	if err := e.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{making.ID, queuedToo.ID} {
		if rec, err := e.Get(ctx, "acme", id); err != nil || rec.Status != runproof.ExportFailed || !strings.Contains(rec.FailureReason, "interrupted") {
			t.Errorf("export %s is %s (%q, %v), want failed, interrupted", id, rec.Status, rec.FailureReason, err)
		}
	}
}

// TestDrain: once the process begins to stop, an export waiting for its
// turn fails at once and one asked for is refused, while the one being
// made goes on to complete.
func TestDrain(t *testing.T) {
	ctx := context.Background()
	e, h, in := heldExporter(t)

	making, err := e.Start(ctx, ctx, "acme", auditor, in)
	if err != nil {
		t.Fatal(err)
	}
	<-h.reading // it holds the only place
	waiting, err := e.Start(ctx, ctx, "acme", auditor, in)
	if err != nil {
		t.Fatal(err)
	}
	e.Drain()
	if _, err := e.Export(ctx, "acme", auditor, in); runproof.ErrorCode(err) != runproof.EUNAVAILABLE || !strings.Contains(err.Error(), "began to stop") {
		t.Errorf("an export asked for while draining: %v, want EUNAVAILABLE, the server stopping", err)
	}
	close(h.release)
	if err := e.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	for id, want := range map[string]runproof.ExportStatus{making.ID: runproof.ExportCompleted, waiting.ID: runproof.ExportFailed} {
		if rec, err := e.Get(ctx, "acme", id); err != nil || rec.Status != want {
			t.Errorf("export %s is %s (%q, %v), want %s", id, rec.Status, rec.FailureReason, err, want)
		}
	}
}
