package storetest

import (
	"context"
	"testing"

	"github.com/runproof/runproof/internal/runproof"
)

func testReviews(t *testing.T, h Harness) {
	ctx, s := context.Background(), h.Store
	x1, x2 := newExport("t1", "x1", at(0)), newExport("t1", "x2", at(1))
	x1.BundleType, x2.BundleType = runproof.BundleSOC2, runproof.BundleSOC2
	createExports(t, s, x1, x2, newExport("t2", "x1", at(0)))
	r1 := runproof.Review{TenantID: "t1", ID: "rv-1", ExportID: "x1", RunID: "r1", BundleID: "SOC2-1", Status: "REVIEWED",
		ReviewedBy: "Ada", KeyID: "key-1", Notes: "steps checked ✓", RunSteps: 12, Remediation: "in_progress",
		RemediationNotesDigest: runproof.DigestBytes([]byte("cap lowered")), ReviewedAt: at(20)}
	r2 := runproof.Review{TenantID: "t1", ID: "rv-2", ExportID: "x2", RunID: "r1", BundleID: "SOC2-2", Status: "APPROVED",
		ReviewedBy: "Ada", KeyID: "key-1", RunSteps: 12, ReviewedAt: at(10)}
	for _, r := range []runproof.Review{r1, r2} {
		if err := s.AddReview(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.RunReviews(ctx, "t1", "r1")
	if err != nil {
		t.Fatal(err)
	}
	equal(t, "reviews of r1, oldest first", got, []runproof.Review{r2, r1})

	wantCode(t, "same review id", s.AddReview(ctx, r1), runproof.ECONFLICT)
	ghost := r1
	ghost.ID, ghost.ExportID = "rv-3", "no-such-export"
	wantCode(t, "review of an export that does not exist", s.AddReview(ctx, ghost), runproof.ENOTFOUND)
	// Another tenant neither sees t1's reviews nor reviews its exports.
	if got, err := s.RunReviews(ctx, "t2", "r1"); err != nil || len(got) != 0 {
		t.Errorf("t2 sees %d reviews (%v)", len(got), err)
	}
	theirs := r1
	theirs.TenantID, theirs.ID, theirs.ExportID = "t3", "rv-4", "x2"
	wantCode(t, "review of another tenant's export", s.AddReview(ctx, theirs), runproof.ENOTFOUND)

	for _, q := range []string{
		"UPDATE export_reviews SET status = 'APPROVED'",
		"DELETE FROM export_reviews",
		"TRUNCATE export_reviews",
		"INSERT INTO export_reviews (" + "tenant_id, id, export_id, run_id, bundle_id, status, reviewed_by, key_id, notes, run_steps, reviewed_at" +
			") VALUES ('t1', 'rv-9', 'x1', 'r1', 'SOC2-1', 'PENDING', 'Ada', 'key-1', '', 12, '2025-03-01T12:00:09.000000Z')",
	} {
		if err := h.Exec(ctx, q); err == nil {
			t.Errorf("%s: succeeded, want refused", q)
		}
	}
	if got, _ := s.RunReviews(ctx, "t1", "r1"); len(got) != 2 {
		t.Errorf("%d reviews after the refused changes, want 2", len(got))
	}
}
