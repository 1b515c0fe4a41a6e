package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/runproof/runproof/internal/runproof"
)

const incidentColumns = `tenant_id, id, run_id, policy_id, policy_version, policy_name,
	violation_type, threshold_value, actual_value, inflection_step_index,
	violation_at, detected_at, contained_at, risk_level, remediation_status, created_at, remediation_notes`

func scanIncident(row scanner) (runproof.Incident, error) {
	var in runproof.Incident
	err := row.Scan(&in.TenantID, &in.ID, &in.RunID, &in.PolicyID, &in.PolicyVersion, &in.PolicyName,
		&in.ViolationType, &in.ThresholdValue, &in.ActualValue, &in.InflectionStepIndex,
		timeCol{&in.ViolationAt}, timeCol{&in.DetectedAt}, nullTimeCol{&in.ContainedAt},
		&in.RiskLevel, &in.RemediationStatus, timeCol{&in.CreatedAt}, &in.RemediationNotes)
	return in, err
}

// insertIncident opens in on the run named by p.
func insertIncident(ctx context.Context, tx *sql.Tx, p runproof.UpdateRunParams, in runproof.Incident) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO incidents (`+incidentColumns+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		p.TenantID, in.ID, p.RunID, in.PolicyID, in.PolicyVersion, in.PolicyName,
		string(in.ViolationType), in.ThresholdValue, in.ActualValue, in.InflectionStepIndex,
		timeText(in.ViolationAt), timeText(in.DetectedAt), nullTimeText(in.ContainedAt),
		string(in.RiskLevel), in.RemediationStatus, timeText(in.CreatedAt), in.RemediationNotes)
	if isUnique(err) {
		return runproof.Errorf(runproof.ECONFLICT, "incident %q already exists", in.ID)
	} else if err != nil {
		return fmt.Errorf("insert incident: %w", err)
	}
	return nil
}

// GetIncident returns one incident.
func (s *Store) GetIncident(ctx context.Context, tenantID, incidentID string) (runproof.Incident, error) {
	in, err := scanIncident(s.db.QueryRowContext(ctx,
		`SELECT `+incidentColumns+` FROM incidents WHERE tenant_id = ? AND id = ?`, tenantID, incidentID))
	if errors.Is(err, sql.ErrNoRows) {
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
	ins, err := collect(ctx, s.db, scanIncident, `SELECT `+incidentColumns+` FROM incidents
		WHERE `+f.conds+` ORDER BY violation_at DESC, id DESC`+page(p.Limit, p.Offset), f.args...)
	if err != nil {
		return nil, fmt.Errorf("list incidents: %w", err)
	}
	return ins, nil
}

// SetRemediation records where an incident's remediation stands, and
// returns the incident as this write left it.
func (s *Store) SetRemediation(ctx context.Context, p runproof.SetRemediationParams) (runproof.Incident, error) {
	w, err := s.writer(ctx, ordinary, "set remediation")
	if err != nil {
		return runproof.Incident{}, err
	}
	defer w.Close()
	in, err := scanIncident(w.QueryRowContext(ctx, `UPDATE incidents SET remediation_status = ?, remediation_notes = ?
		WHERE tenant_id = ? AND id = ? RETURNING `+incidentColumns, p.Status, p.Notes, p.TenantID, p.IncidentID))
	if errors.Is(err, sql.ErrNoRows) {
		return runproof.Incident{}, runproof.Errorf(runproof.ENOTFOUND, "incident %q not found", p.IncidentID)
	} else if err != nil {
		return runproof.Incident{}, fmt.Errorf("set remediation: %w", err)
	}
	return in, nil
}
