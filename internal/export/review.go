package export

import (
	"cmp"
	"context"
	"fmt"
	"strings"

	"github.com/runproof/runproof/internal/evidence"
	"github.com/runproof/runproof/internal/runproof"
)

// ReviewInput is a reviewer's sign-off on a SOC 2 export, as they send it.
type ReviewInput struct {
	Status     string `json:"review_status" openapi:"required,enum=REVIEWED|APPROVED"`
	ReviewedBy string `json:"reviewed_by"` // the reviewer's name; by default the key's name, else its id
	Notes      string `json:"auditor_notes"`
}

// Review records a reviewer's sign-off on a completed SOC 2 export, made
// with key. The bundle must be up to date, the run as it stands now: every
// step the run has, in the bundle, and the incident's remediation status
// and notes as they are (ECONFLICT otherwise: export again and review that bundle).
// Later SOC 2 bundles of the run show the sign-off while they hold as many
// steps, all of them, and the same remediation status and notes (steps are
// append-only and numbered without gaps). Exports are never changed: the
// bundle reviewed keeps saying PENDING.
func (e *Exporter) Review(ctx context.Context, key runproof.APIKey, exportID string, in ReviewInput) (runproof.Review, error) {
	var errs runproof.Fields
	switch in.Status {
	case evidence.ReviewReviewed, evidence.ReviewApproved:
	default:
		errs.Add("review_status", "must be REVIEWED or APPROVED")
	}
	in.ReviewedBy = strings.TrimSpace(in.ReviewedBy)
	if in.ReviewedBy == "" {
		in.ReviewedBy = cmp.Or(key.Name, key.ID)
	}
	errs.Text("reviewed_by", in.ReviewedBy, runproof.MaxName)
	errs.Prose("auditor_notes", in.Notes, runproof.MaxNotes)
	if err := errs.Err(); err != nil {
		return runproof.Review{}, err
	}

	rec, err := e.store.GetExport(ctx, key.TenantID, exportID)
	if err != nil {
		return runproof.Review{}, err
	}
	switch {
	case rec.BundleType != runproof.BundleSOC2:
		return runproof.Review{}, runproof.Errorf(runproof.ECONFLICT, "export %s is not a SOC 2 bundle (bundle_type %s): only SOC 2 bundles are reviewed", rec.ID, rec.BundleType)
	case rec.Status != runproof.ExportCompleted:
		return runproof.Review{}, runproof.Errorf(runproof.ECONFLICT, "export %s is %s: only a completed export can be reviewed", rec.ID, rec.Status)
	}
	run, err := e.store.GetRun(ctx, key.TenantID, rec.RunID)
	if err != nil {
		return runproof.Review{}, err
	}
	var remediation, notes string
	if rec.IncidentID != "" {
		inc, err := e.store.GetIncident(ctx, key.TenantID, rec.IncidentID)
		if err != nil {
			return runproof.Review{}, err
		}
		remediation = inc.RemediationStatus
		notes = evidence.Source{Incident: &inc}.RemediationNotesDigest()
	}
	const again = "export its SOC 2 bundle again and review that one"
	switch {
	case rec.TotalSteps == nil || rec.StepsOmitted == nil:
		return runproof.Review{}, runproof.Errorf(runproof.ECONFLICT,
			"export %s does not record which steps its bundle holds (made by an earlier runproof): %s", rec.ID, again)
	case *rec.TotalSteps != run.Totals.Steps:
		return runproof.Review{}, runproof.Errorf(runproof.ECONFLICT,
			"run %s has %d steps, the bundle of export %s holds %d: %s", rec.RunID, run.Totals.Steps, rec.ID, *rec.TotalSteps, again)
	case *rec.StepsOmitted > 0:
		return runproof.Review{}, runproof.Errorf(runproof.ECONFLICT,
			"the bundle of export %s leaves out the run's %d steps (include_raw_steps false), and a sign-off covers the whole trace: %s with its steps",
			rec.ID, *rec.StepsOmitted, again)
	case rec.Remediation != remediation:
		return runproof.Review{}, runproof.Errorf(runproof.ECONFLICT,
			"the bundle of export %s shows remediation %q, the incident's is now %q: %s", rec.ID, rec.Remediation, remediation, again)
	case rec.IncidentID != "" && rec.RemediationNotesDigest == "":
		return runproof.Review{}, runproof.Errorf(runproof.ECONFLICT,
			"export %s does not record which remediation notes its bundle shows (made by an earlier runproof): %s", rec.ID, again)
	case rec.RemediationNotesDigest != notes:
		return runproof.Review{}, runproof.Errorf(runproof.ECONFLICT,
			"the incident's remediation notes have changed since export %s was made: %s", rec.ID, again)
	}
	r := runproof.Review{TenantID: key.TenantID, ID: e.newID(), ExportID: rec.ID, RunID: rec.RunID, BundleID: rec.BundleID,
		Status: in.Status, ReviewedBy: in.ReviewedBy, KeyID: key.ID, Notes: in.Notes, RunSteps: *rec.TotalSteps, Remediation: rec.Remediation,
		RemediationNotesDigest: rec.RemediationNotesDigest, ReviewedAt: runproof.Timestamp(e.now())}
	if err := e.store.AddReview(ctx, r); err != nil {
		return runproof.Review{}, fmt.Errorf("review of export %s: %w", rec.ID, err)
	}
	return r, nil
}

// Reviews returns the reviews of one export, oldest first.
func (e *Exporter) Reviews(ctx context.Context, tenantID, exportID string) ([]runproof.Review, error) {
	rec, err := e.store.GetExport(ctx, tenantID, exportID)
	if err != nil {
		return nil, err
	}
	all, err := e.store.RunReviews(ctx, tenantID, rec.RunID)
	if err != nil {
		return nil, err
	}
	out := []runproof.Review{}
	for _, r := range all {
		if r.ExportID == exportID {
			out = append(out, r)
		}
	}
	return out, nil
}
