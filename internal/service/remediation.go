package service

import (
	"context"
	"slices"
	"strings"

	"github.com/runproof/runproof/internal/runproof"
)

// RemediationInput says where the remediation of an incident stands.
type RemediationInput struct {
	Status string `json:"remediation_status"` // pending, in_progress or completed
	Notes  string `json:"remediation_notes"`  // what was done or is planned
}

// SetRemediation records where the remediation of an incident stands.
// Later bundles of the incident show it: a remediation in progress or
// completed is what SOC 2 control CC7.4 needs to be demonstrated.
func (s *Service) SetRemediation(ctx context.Context, tenantID, incidentID string, in RemediationInput) (runproof.Incident, error) {
	var errs []runproof.FieldError
	if !slices.Contains(runproof.RemediationStatuses, in.Status) {
		errs = append(errs, runproof.FieldError{Field: "remediation_status", Message: "must be one of " + strings.Join(runproof.RemediationStatuses, ", ")})
	}
	if len(in.Notes) > 2000 {
		errs = append(errs, runproof.FieldError{Field: "remediation_notes", Message: "must be at most 2000 bytes"})
	} else if err := runproof.CheckProse(in.Notes); err != nil {
		errs = append(errs, runproof.FieldError{Field: "remediation_notes", Message: err.Error()})
	}
	if len(errs) > 0 {
		return runproof.Incident{}, runproof.Invalid(errs...)
	}
	return s.store.SetRemediation(ctx, runproof.SetRemediationParams{TenantID: tenantID, IncidentID: incidentID, Status: in.Status, Notes: in.Notes})
}
