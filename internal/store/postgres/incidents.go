package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/runproof/runproof/internal/runproof"
)

const incidentColumns = `tenant_id, id, run_id, policy_id, policy_version, policy_name,
	violation_type, threshold_value, actual_value, inflection_step_index,
	violation_at, detected_at, contained_at, risk_level, remediation_status, created_at, remediation_notes`

func scanIncident(row pgx.Row) (runproof.Incident, error) {
	var in runproof.Incident
	err := row.Scan(&in.TenantID, &in.ID, &in.RunID, &in.PolicyID, &in.PolicyVersion, &in.PolicyName,
		&in.ViolationType, &in.ThresholdValue, &in.ActualValue, &in.InflectionStepIndex,
		&in.ViolationAt, &in.DetectedAt, &in.ContainedAt,
		&in.RiskLevel, &in.RemediationStatus, &in.CreatedAt, &in.RemediationNotes)
	in.ViolationAt = runproof.Timestamp(in.ViolationAt)
	in.DetectedAt = runproof.Timestamp(in.DetectedAt)
	in.ContainedAt = utc(in.ContainedAt)
	in.CreatedAt = runproof.Timestamp(in.CreatedAt)
	return in, err
}

// queueIncident adds the insert of in, on the run named by p, to b.
func queueIncident(b *pgx.Batch, p runproof.UpdateRunParams, in runproof.Incident) {
	b.Queue(`INSERT INTO incidents (`+incidentColumns+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)`,
		p.TenantID, in.ID, p.RunID, in.PolicyID, in.PolicyVersion, in.PolicyName,
		string(in.ViolationType), in.ThresholdValue, in.ActualValue, in.InflectionStepIndex,
		runproof.Timestamp(in.ViolationAt), runproof.Timestamp(in.DetectedAt), nullTime(in.ContainedAt),
		string(in.RiskLevel), in.RemediationStatus, runproof.Timestamp(in.CreatedAt), in.RemediationNotes)
}

// GetIncident returns one incident.
func (s *Store) GetIncident(ctx context.Context, tenantID, incidentID string) (runproof.Incident, error) {
	in, err := scanIncident(s.pool.QueryRow(ctx,
		`SELECT `+incidentColumns+` FROM incidents WHERE tenant_id = $1 AND id = $2`, tenantID, incidentID))
	if errors.Is(err, pgx.ErrNoRows) {
		return runproof.Incident{}, runproof.Errorf(runproof.ENOTFOUND, "incident %q not found", incidentID)
	} else if err != nil {
		return runproof.Incident{}, fmt.Errorf("get incident: %w", err)
	}
	return in, nil
}

// ListIncidents returns incidents newest first.
func (s *Store) ListIncidents(ctx context.Context, p runproof.ListIncidentsParams) ([]runproof.Incident, error) {
	var f filter
	f.add("tenant_id = ?", p.TenantID)
	if p.RunID != "" {
		f.add("run_id = ?", p.RunID)
	}
	if p.RemediationStatus != "" {
		f.add("remediation_status = ?", p.RemediationStatus)
	}
	f.timeRange("violation_at", p.From, p.To)
	f.timeRange("detected_at", time.Time{}, p.DetectedBefore)
	ins, err := collect(ctx, s.pool, scanIncident, `SELECT `+incidentColumns+` FROM incidents
		WHERE `+f.conds+` ORDER BY violation_at DESC, id DESC`+page(p.Limit, p.Offset), f.args...)
	if err != nil {
		return nil, fmt.Errorf("list incidents: %w", err)
	}
	return ins, nil
}

// SetRemediation records where an incident's remediation stands, and
// returns the incident as this write left it.
func (s *Store) SetRemediation(ctx context.Context, p runproof.SetRemediationParams) (runproof.Incident, error) {
	in, err := scanIncident(s.pool.QueryRow(ctx, `UPDATE incidents SET remediation_status = $1, remediation_notes = $2
		WHERE tenant_id = $3 AND id = $4 RETURNING `+incidentColumns, p.Status, p.Notes, p.TenantID, p.IncidentID))
	if errors.Is(err, pgx.ErrNoRows) {
		return runproof.Incident{}, runproof.Errorf(runproof.ENOTFOUND, "incident %q not found", p.IncidentID)
	} else if err != nil {
		return runproof.Incident{}, fmt.Errorf("set remediation: %w", err)
	}
	return in, nil
}
