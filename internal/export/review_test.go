package export_test

import (
	"context"
	"encoding/json"
	"strings"
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
		old := runproof.ExportRequest{ID: "old-soc2", TenantID: inc.TenantID, Scope: runproof.ScopeLLMRun, RunID: inc.RunID,
			IncidentID: inc.ID, BundleType: runproof.BundleSOC2, Format: runproof.FormatJSON, RequestedBy: "key_auditor",
			Origin: runproof.OriginHuman, SourceComponent: "api", CreatedAt: fixed}
		if err := store.CreateExport(ctx, old); err != nil {
			t.Fatal(err)
		}
		if err := store.AppendExportEvent(ctx, runproof.ExportEvent{TenantID: inc.TenantID, ExportID: old.ID,
			Kind: runproof.ExportEventCompleted, At: fixed, Checksum: "sha256:00", SizeBytes: 1, BundleID: "SOC2-old", Artifact: "a"}); err != nil {
			t.Fatal(err)
		}
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
	run, err := store.GetRun(ctx, inc.TenantID, inc.RunID)
	if err != nil {
		t.Fatal(err)
	}
	old := runproof.ExportRequest{ID: "old-soc2", TenantID: inc.TenantID, Scope: runproof.ScopeLLMRun, RunID: inc.RunID,
		IncidentID: inc.ID, BundleType: runproof.BundleSOC2, Format: runproof.FormatJSON, RequestedBy: "key_auditor",
		Origin: runproof.OriginHuman, SourceComponent: "api", CreatedAt: fixed}
	if err := store.CreateExport(ctx, old); err != nil {
		t.Fatal(err)
	}
	steps := run.Totals.Steps
	if err := store.AppendExportEvent(ctx, runproof.ExportEvent{TenantID: inc.TenantID, ExportID: old.ID, Kind: runproof.ExportEventCompleted,
		At: fixed, Checksum: "sha256:00", SizeBytes: 1, BundleID: "SOC2-old", Artifact: "a", Steps: &steps,
		Remediation: inc.RemediationStatus}); err != nil {
		t.Fatal(err)
	}
	if err := store.AddReview(ctx, runproof.Review{TenantID: inc.TenantID, ID: "rv-old", ExportID: old.ID, RunID: inc.RunID,
		BundleID: "SOC2-old", Status: "APPROVED", ReviewedBy: "Ada", KeyID: "key_auditor", RunSteps: steps,
		Remediation: inc.RemediationStatus, ReviewedAt: fixed.Add(-time.Minute)}); err != nil {
		t.Fatal(err)
	}
	e := newExporter(t, store, nil)
	rec, err := e.Export(ctx, inc.TenantID, auditor, export.Input{IncidentID: inc.ID, BundleType: runproof.BundleSOC2, Format: runproof.FormatJSON})
	if err != nil {
		t.Fatal(err)
	}
	_, f, err := e.Open(ctx, inc.TenantID, rec.ID)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var b evidence.SOC2Bundle
	if err := json.NewDecoder(f).Decode(&b); err != nil {
		t.Fatal(err)
	}
	if b.ReviewStatus != evidence.ReviewPending {
		t.Errorf("a sign-off on a bundle of unknown steps carried over: %s by %q", b.ReviewStatus, b.ReviewedBy)
	}
}
