package export_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/runproof/runproof/internal/export"
	"github.com/runproof/runproof/internal/runproof"
	"github.com/runproof/runproof/internal/service"
	"github.com/runproof/runproof/internal/store/storetest"
)

// TestDebriefStepsAfterStop: the debrief tells the steps that came in the
// same request as the one that broke the rule, which the agent sent before
// it could learn of the stop, from those it sent in later requests, after
// it was told; on both engines, as stored and read back.
func TestDebriefStepsAfterStop(t *testing.T) {
	storetest.Each(t, func(t *testing.T, store runproof.Store) {
		ctx := context.Background()
		now := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
		svc := service.New(store, service.Options{Now: func() time.Time { return now }})
		run := cappedRun(t, svc, "1.2", "batched")
		appendSteps(t, svc, run.ID, 0, 5) // 0.5 cents each: step 2 breaks the cap, 3 and 4 come with it
		now = now.Add(time.Second)
		appendSteps(t, svc, run.ID, 5, 1) // after the answer that said stop

		incs, err := store.ListIncidents(ctx, runproof.ListIncidentsParams{TenantID: "acme"})
		if err != nil || len(incs) != 1 {
			t.Fatalf("%d incidents, %v", len(incs), err)
		}
		e := newExporter(t, store, nil)
		rec, err := e.Export(ctx, "acme", auditor, export.Input{IncidentID: incs[0].ID, Format: runproof.FormatJSON,
			BundleType: runproof.BundleExecutiveDebrief})
		if err != nil {
			t.Fatal(err)
		}
		var b struct {
			Summary string   `json:"incident_summary"`
			Actions []string `json:"recommended_actions"`
		}
		if err := json.Unmarshal(download(t, e, rec), &b); err != nil {
			t.Fatal(err)
		}
		want := "2 more steps came in the same request as that step, before the agent could learn of the stop. " +
			"The agent then sent 1 more step even though it had been told to stop."
		if !strings.HasSuffix(b.Summary, want) {
			t.Errorf("summary\n got %s\nwant …%s", b.Summary, want)
		}
		if actions := strings.Join(b.Actions, "\n"); !strings.Contains(actions, "it sent 1 more step after it was told to stop") ||
			!strings.Contains(actions, "smaller batches: 2 more steps") {
			t.Errorf("actions:\n%s", actions)
		}
	})
}
