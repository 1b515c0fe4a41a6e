package service

import (
	"context"
	"slices"
	"strings"

	"github.com/runproof/runproof/internal/runproof"
)

// RemediationInput says where the remediation of an incident stands.
type RemediationInput struct {
	Status string `json:"remediation_status" openapi:"required,enum=pending|in_progress|completed"`
	Notes  string `json:"remediation_notes"` // what was done or is planned
}

// SetRemediation records where the remediation of an incident stands.
// Later bundles of the incident show it: a remediation in progress or
// completed is what SOC 2 control CC7.4 needs to be demonstrated.
func (s *Service) SetRemediation(ctx context.Context, tenantID, incidentID string, in RemediationInput) (runproof.Incident, error) {
	var errs runproof.Fields
	if !slices.Contains(runproof.RemediationStatuses, in.Status) {
		errs.Add("remediation_status", "must be one of %s", strings.Join(runproof.RemediationStatuses, ", "))
	}
	errs.Prose("remediation_notes", in.Notes, runproof.MaxNotes)
	if err := errs.Err(); err != nil {
		return runproof.Incident{}, err
	}
	return s.store.SetRemediation(ctx, runproof.SetRemediationParams{TenantID: tenantID, IncidentID: incidentID, Status: in.Status, Notes: in.Notes})
}
