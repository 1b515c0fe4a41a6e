package export_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/runproof/runproof/internal/export"
	"github.com/runproof/runproof/internal/runproof"
	"github.com/runproof/runproof/internal/service"
	"github.com/runproof/runproof/internal/store/storetest"
	"github.com/runproof/runproof/internal/verify"
)

// TestLateBreach: a run ends on its own, then late steps (those that ended
// by its end) come and break a stop policy. The first opens one incident,
// which nothing contained; the others, in its batch or later, are judged
// as after it. The incident exports as every other does, the debrief
// saying the run had ended, and the ledger verifies.
func TestLateBreach(t *testing.T) {
	storetest.Each(t, func(t *testing.T, store runproof.Store) {
		ctx := context.Background()
		now := time.Date(2026, 11, 22, 9, 1, 0, 0, time.UTC) // within the grace of the run's end
		svc := service.New(store, service.Options{Now: func() time.Time { return now }})
		run := cappedRun(t, svc, "1.2", "late")
		appendSteps(t, svc, run.ID, 0, 2)
		if _, err := svc.CompleteRun(ctx, "acme", run.ID, service.CompleteInput{CompletedAt: "2026-11-22T09:00:09Z"}); err != nil {
			t.Fatal(err)
		}
		appendSteps(t, svc, run.ID, 2, 2) // 1.5 cents at step 2, and one more
		appendSteps(t, svc, run.ID, 4, 1)
		steps, err := store.ListSteps(ctx, runproof.ListStepsParams{TenantID: "acme", RunID: run.ID, Limit: 10})
		if err != nil || len(steps) != 5 {
			t.Fatalf("%d steps, %v", len(steps), err)
		}
		for _, s := range steps {
			if s.IsInflection != (s.Index == 2) || (s.Index >= 2) != (s.Status == runproof.StepViolation) {
				t.Errorf("step %d: %s, inflection %v", s.Index, s.Status, s.IsInflection)
			}
		}
		incs, err := store.ListIncidents(ctx, runproof.ListIncidentsParams{TenantID: "acme"})
		if err != nil || len(incs) != 1 || incs[0].ContainedAt != nil || incs[0].InflectionStepIndex != 2 {
			t.Fatalf("incidents %+v, %v", incs, err)
		}
		if r, err := store.GetRun(ctx, "acme", run.ID); err != nil || r.Status != runproof.RunCompleted || r.IncidentID != incs[0].ID {
			t.Fatalf("run %+v, %v", r, err)
		}

		lx := newLedgered(t, store, nil)
		for _, bt := range []runproof.BundleType{runproof.BundleEvidence, runproof.BundleSOC2, runproof.BundleExecutiveDebrief} {
			for _, format := range []runproof.ExportFormat{runproof.FormatJSON, runproof.FormatZIP} {
				rec, err := lx.exporter.Export(ctx, "acme", auditor, export.Input{IncidentID: incs[0].ID, Format: format, BundleType: bt})
				if err != nil || rec.Status != runproof.ExportCompleted {
					t.Fatalf("%s %s: %+v, %v", bt, format, rec, err)
				}
				b := download(t, lx.exporter, rec)
				if format == runproof.FormatZIP {
					if rep := verify.ZIP(bytes.NewReader(b), int64(len(b)), verify.Options{Key: lx.key.Public()}); !rep.Authentic() {
						t.Errorf("%s ZIP does not verify: %v", bt, rep.Failure)
					}
				} else if bt == runproof.BundleExecutiveDebrief && !bytes.Contains(b, []byte("the run had already ended")) {
					t.Errorf("the debrief does not say the run had ended:\n%s", b)
				}
			}
		}
		if err := lx.verify(ctx, "acme"); err != nil {
			t.Errorf("ledger verify: %v", err)
		}
	})
}
