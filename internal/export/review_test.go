package export_test

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/runproof/runproof/internal/evidence"
	"github.com/runproof/runproof/internal/export"
	"github.com/runproof/runproof/internal/runproof"
	"github.com/runproof/runproof/internal/store/storetest"
)

// TestReviewNeedsTheBundlesSteps: a sign-off covers the steps the bundle
// was built from, so an export that does not record them (made by an
// earlier runproof) cannot be signed off, and one made now records them.
func TestReviewNeedsTheBundlesSteps(t *testing.T) {
	storetest.Each(t, func(t *testing.T, store runproof.Store) {
		ctx := context.Background()
		inc := seeded(t, store)
		run, err := store.GetRun(ctx, inc.TenantID, inc.RunID)
		if err != nil {
			t.Fatal(err)
		}
		// As an earlier runproof recorded a completed export.
		old := earlierSOC2(t, store, inc, runproof.ExportEvent{})
		e := newExporter(t, store, nil)
		key := runproof.APIKey{ID: "key_auditor", TenantID: inc.TenantID, Role: runproof.RoleAuditor, Name: "auditor"}
		_, err = e.Review(ctx, key, old.ID, export.ReviewInput{Status: "APPROVED"})
		if runproof.ErrorCode(err) != runproof.ECONFLICT || !strings.Contains(err.Error(), "does not record which steps") {
			t.Fatalf("review of an export without its step count: %v, want a conflict saying why", err)
		}

		rec, err := e.Export(ctx, inc.TenantID, auditor, export.Input{IncidentID: inc.ID, BundleType: runproof.BundleSOC2,
			Format: runproof.FormatJSON})
		if err != nil {
			t.Fatal(err)
		}
		if rec.TotalSteps == nil || *rec.TotalSteps != run.Totals.Steps {
			t.Fatalf("the export records %v steps, the run has %d", rec.TotalSteps, run.Totals.Steps)
		}
		if rec.StepsOmitted == nil || *rec.StepsOmitted != 0 {
			t.Fatalf("the export records %v steps left out, want 0", rec.StepsOmitted)
		}
		r, err := e.Review(ctx, key, rec.ID, export.ReviewInput{Status: "REVIEWED", ReviewedBy: "  "})
		if err != nil || r.RunSteps != run.Totals.Steps || r.ReviewedBy != "auditor" {
			t.Fatalf("review: %+v, %v", r, err)
		}
	})
}

// TestEarlierReviewOfUnknownSteps: a sign-off stored by an earlier runproof
// on a bundle that does not record whether it held every step (it may have
// left them out) does not carry over to the bundles made now.
func TestEarlierReviewOfUnknownSteps(t *testing.T) {
	store := storetest.OpenSQLite(t)
	ctx := context.Background()
	inc := seeded(t, store)
	signedOffSOC2(t, store, inc, nil)
	e := newExporter(t, store, nil)
	rec, err := e.Export(ctx, inc.TenantID, auditor, export.Input{IncidentID: inc.ID, BundleType: runproof.BundleSOC2, Format: runproof.FormatJSON})
	if err != nil {
		t.Fatal(err)
	}
	if b := soc2Of(t, e, rec); b.ReviewStatus != evidence.ReviewPending {
		t.Errorf("a sign-off on a bundle of unknown steps carried over: %s by %q", b.ReviewStatus, b.ReviewedBy)
	}
}

// TestReviewOfAnotherPeriod: a sign-off carries over to the SOC 2 bundles
// of the same compliance period only: one given on a day's bundle of a
// run does not vouch for a year's bundle of it. The scope asked for
// (llm_run, the default, or compliance, the incident route's) does not
// change what the bundle holds, so it does not keep a sign-off off.
func TestReviewOfAnotherPeriod(t *testing.T) {
	store := storetest.OpenSQLite(t)
	ctx := context.Background()
	inc := seeded(t, store)
	omitted := int64(0)
	signedOffSOC2(t, store, inc, &omitted) // a bundle of the incident's day
	day, _ := evidence.CompliancePeriod(inc.DetectedAt, nil, nil)
	e := newExporter(t, store, nil)
	for _, c := range []struct {
		in   export.Input
		want string
	}{
		{export.Input{Scope: runproof.ScopeCompliance, PeriodStart: "2026-01-01T00:00:00Z", PeriodEnd: "2027-01-01T00:00:00Z"}, evidence.ReviewPending},
		{export.Input{}, "APPROVED"},                                      // the scope and period reviewed
		{export.Input{PeriodStart: day.Format(time.RFC3339)}, "APPROVED"}, // the same period, given
		{export.Input{Scope: runproof.ScopeCompliance}, "APPROVED"},       // the same period, as the incident route asks
	} {
		c.in.IncidentID, c.in.BundleType, c.in.Format = inc.ID, runproof.BundleSOC2, runproof.FormatJSON
		rec, err := e.Export(ctx, inc.TenantID, auditor, c.in)
		if err != nil {
			t.Fatal(err)
		}
		if b := soc2Of(t, e, rec); b.ReviewStatus != c.want {
			t.Errorf("%s export from %s: review status %s by %q, want %s", c.in.Scope, c.in.PeriodStart, b.ReviewStatus, b.ReviewedBy, c.want)
		}
	}
}

// signedOffSOC2 stores a completed SOC 2 export of every step of the
// incident's run as an earlier runproof did, recording the steps it left
// out as omitted (nil: not recorded), and a sign-off on it a minute before
// fixed.
func signedOffSOC2(t *testing.T, store runproof.Store, inc runproof.Incident, omitted *int64) {
	t.Helper()
	ctx := context.Background()
	run, err := store.GetRun(ctx, inc.TenantID, inc.RunID)
	if err != nil {
		t.Fatal(err)
	}
	steps := run.Totals.Steps
	old := earlierSOC2(t, store, inc, runproof.ExportEvent{Steps: &steps, StepsOmitted: omitted, Remediation: inc.RemediationStatus})
	if err := store.AddReview(ctx, runproof.Review{TenantID: inc.TenantID, ID: "rv-old", ExportID: old.ID, RunID: inc.RunID,
		BundleID: "SOC2-old", Status: "APPROVED", ReviewedBy: "Ada", KeyID: "key_auditor", RunSteps: steps,
		Remediation: inc.RemediationStatus, ReviewedAt: fixed.Add(-time.Minute)}); err != nil {
		t.Fatal(err)
	}
}

// earlierSOC2 stores a completed SOC 2 export as an earlier runproof did:
// its completed event is ev, with what that runproof recorded.
func earlierSOC2(t *testing.T, store runproof.Store, inc runproof.Incident, ev runproof.ExportEvent) runproof.ExportRequest {
	t.Helper()
	ctx := context.Background()
	old := runproof.ExportRequest{ID: "old-soc2", TenantID: inc.TenantID, Scope: runproof.ScopeLLMRun, RunID: inc.RunID,
		IncidentID: inc.ID, BundleType: runproof.BundleSOC2, Format: runproof.FormatJSON, RequestedBy: "key_auditor",
		Origin: runproof.OriginHuman, SourceComponent: "api", CreatedAt: fixed}
	if err := store.CreateExport(ctx, old); err != nil {
		t.Fatal(err)
	}
	ev.TenantID, ev.ExportID, ev.Kind, ev.At = inc.TenantID, old.ID, runproof.ExportEventCompleted, fixed
	ev.Checksum, ev.SizeBytes, ev.BundleID, ev.Artifact = "sha256:00", 1, "SOC2-old", "a"
	if err := store.AppendExportEvent(ctx, ev); err != nil {
		t.Fatal(err)
	}
	return old
}

// soc2Of reads the SOC 2 bundle an export made.
func soc2Of(t *testing.T, e *export.Exporter, rec runproof.Export) evidence.SOC2Bundle {
	t.Helper()
	_, f, err := e.Open(context.Background(), rec.TenantID, rec.ID)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var b evidence.SOC2Bundle
	if err := json.NewDecoder(f).Decode(&b); err != nil {
		t.Fatal(err)
	}
	return b
}

// TestReviewOfOtherRemediationNotes: a bundle shows the incident's
// remediation notes, so a sign-off holds for the notes it was given on: a
// bundle made before the notes changed cannot be signed off, and one made
// after a sign-off, with other notes, does not carry it.
func TestReviewOfOtherRemediationNotes(t *testing.T) {
	storetest.Each(t, func(t *testing.T, store runproof.Store) {
		ctx := context.Background()
		inc := seeded(t, store)
		arts, _ := tempArtifacts(t)
		var mu sync.Mutex
		now := fixed
		tick := func() time.Time { // a second on at each look: a sign-off comes before the next export
			mu.Lock()
			defer mu.Unlock()
			now = now.Add(time.Second)
			return now
		}
		e := export.New(store, arts, export.Options{NewID: ids(2), Now: tick})
		key := runproof.APIKey{ID: "key_auditor", TenantID: inc.TenantID, Role: runproof.RoleAuditor, Name: "auditor"}
		soc2 := func() runproof.Export {
			t.Helper()
			rec, err := e.Export(ctx, inc.TenantID, auditor, export.Input{IncidentID: inc.ID, BundleType: runproof.BundleSOC2, Format: runproof.FormatJSON})
			if err != nil {
				t.Fatal(err)
			}
			return rec
		}
		note := func(notes string) {
			t.Helper()
			if _, err := store.SetRemediation(ctx, runproof.SetRemediationParams{TenantID: inc.TenantID, IncidentID: inc.ID,
				Status: inc.RemediationStatus, Notes: notes}); err != nil {
				t.Fatal(err)
			}
		}
		// An export made before runproof recorded the notes its bundle
		// shows cannot be signed off.
		run, err := store.GetRun(ctx, inc.TenantID, inc.RunID)
		if err != nil {
			t.Fatal(err)
		}
		steps, omitted := run.Totals.Steps, int64(0)
		old := earlierSOC2(t, store, inc, runproof.ExportEvent{Steps: &steps, StepsOmitted: &omitted, Remediation: inc.RemediationStatus})
		if _, err := e.Review(ctx, key, old.ID, export.ReviewInput{Status: "APPROVED"}); runproof.ErrorCode(err) != runproof.ECONFLICT ||
			!strings.Contains(err.Error(), "does not record which remediation notes") {
			t.Fatalf("review of an export without its notes' digest: %v, want a conflict saying why", err)
		}
		before := soc2()
		note("Cap lowered to $0.50.")
		_, err = e.Review(ctx, key, before.ID, export.ReviewInput{Status: "APPROVED"})
		if runproof.ErrorCode(err) != runproof.ECONFLICT || !strings.Contains(err.Error(), "remediation notes have changed") {
			t.Fatalf("review of a bundle made before the notes changed: %v, want a conflict saying why", err)
		}
		reviewed := soc2()
		if _, err := e.Review(ctx, key, reviewed.ID, export.ReviewInput{Status: "APPROVED"}); err != nil {
			t.Fatal(err)
		}
		if b := soc2Of(t, e, soc2()); b.ReviewStatus != evidence.ReviewApproved {
			t.Errorf("the sign-off does not carry to a bundle of the same notes: %s", b.ReviewStatus)
		}
		note("Cap lowered to $0.50; reviews weekly.")
		if b := soc2Of(t, e, soc2()); b.ReviewStatus != evidence.ReviewPending {
			t.Errorf("the sign-off carries to a bundle of other notes: %s by %q", b.ReviewStatus, b.ReviewedBy)
		}
	})
}
