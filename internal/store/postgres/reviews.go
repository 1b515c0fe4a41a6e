package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/runproof/runproof/internal/runproof"
)

const reviewColumns = `tenant_id, id, export_id, run_id, bundle_id, status, reviewed_by, key_id, notes, run_steps, reviewed_at, remediation, remediation_notes`

func scanReview(row pgx.Row) (runproof.Review, error) {
	var r runproof.Review
	err := row.Scan(&r.TenantID, &r.ID, &r.ExportID, &r.RunID, &r.BundleID, &r.Status, &r.ReviewedBy, &r.KeyID,
		&r.Notes, &r.RunSteps, &r.ReviewedAt, &r.Remediation, &r.RemediationNotesDigest)
	r.ReviewedAt = runproof.Timestamp(r.ReviewedAt)
	return r, err
}

// AddReview stores a review of an export.
func (s *Store) AddReview(ctx context.Context, r runproof.Review) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO export_reviews (`+reviewColumns+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)`,
		r.TenantID, r.ID, r.ExportID, r.RunID, r.BundleID, r.Status, r.ReviewedBy, r.KeyID, r.Notes, r.RunSteps,
		runproof.Timestamp(r.ReviewedAt), r.Remediation, r.RemediationNotesDigest)
	switch {
	case isUnique(err):
		return runproof.Errorf(runproof.ECONFLICT, "review %q already exists", r.ID)
	case isForeignKey(err):
		return runproof.Errorf(runproof.ENOTFOUND, "export %q not found", r.ExportID)
	case err != nil:
		return fmt.Errorf("add review: %w", err)
	}
	return nil
}

// RunReviews returns the reviews of a run's exports, oldest first.
func (s *Store) RunReviews(ctx context.Context, tenantID, runID string) ([]runproof.Review, error) {
	out, err := collect(ctx, s.pool, scanReview, `SELECT `+reviewColumns+` FROM export_reviews
		WHERE tenant_id = $1 AND run_id = $2 ORDER BY reviewed_at, id`, tenantID, runID)
	if err != nil {
		return nil, fmt.Errorf("run reviews: %w", err)
	}
	return out, nil
}
