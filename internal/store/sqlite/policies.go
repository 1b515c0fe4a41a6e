package sqlite

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/runproof/runproof/internal/runproof"
)

const policyColumns = `tenant_id, id, name, version, type, threshold, action, step_types, expression, created_at`

func scanPolicy(row scanner) (runproof.Policy, error) {
	var p runproof.Policy
	err := row.Scan(&p.TenantID, &p.ID, &p.Name, &p.Version, &p.Type, &p.Threshold, &p.Action,
		jsonCol{&p.StepTypes}, &p.Expression, timeCol{&p.CreatedAt})
	return p, err
}

// CreatePolicy stores p as the next version of the tenant's policy of that
// name, or as version 1 of a new policy.
func (s *Store) CreatePolicy(ctx context.Context, p runproof.Policy) (runproof.Policy, error) {
	stepTypes, err := jsonList(p.StepTypes)
	if err != nil {
		return runproof.Policy{}, fmt.Errorf("create policy: %w", err)
	}
	// The immediate transaction holds the write lock from BEGIN, so no other
	// writer can take the same version between the SELECT and the INSERT.
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return runproof.Policy{}, fmt.Errorf("create policy: %w", err)
	}
	defer tx.Rollback()

	// Every version of a name shares one ID, so max(id) is that ID.
	var id sql.NullString
	var version sql.NullInt64
	err = tx.QueryRowContext(ctx, `
		SELECT max(id), max(version) FROM policies WHERE tenant_id = ? AND name = ?`,
		p.TenantID, p.Name).Scan(&id, &version)
	if err != nil {
		return runproof.Policy{}, fmt.Errorf("create policy: %w", err)
	}
	p.Version = 1
	if version.Valid {
		p.ID, p.Version = id.String, int(version.Int64)+1
	}
	p.CreatedAt = runproof.Timestamp(p.CreatedAt)
	if len(p.StepTypes) == 0 {
		p.StepTypes = nil
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO policies (`+policyColumns+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		p.TenantID, p.ID, p.Name, p.Version, string(p.Type), p.Threshold, string(p.Action),
		stepTypes, p.Expression, timeText(p.CreatedAt))
	if isUnique(err) {
		return runproof.Policy{}, runproof.Errorf(runproof.ECONFLICT, "policy id %q already belongs to a policy other than %q", p.ID, p.Name)
	} else if err != nil {
		return runproof.Policy{}, fmt.Errorf("create policy: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return runproof.Policy{}, fmt.Errorf("create policy: %w", err)
	}
	return p, nil
}

// ActivePolicies returns the latest version of each policy, by name.
func (s *Store) ActivePolicies(ctx context.Context, tenantID string) ([]runproof.Policy, error) {
	ps, err := collect(ctx, s.db, scanPolicy, `
		SELECT `+policyColumns+` FROM policies p
		WHERE tenant_id = ? AND version = (
			SELECT max(version) FROM policies q WHERE q.tenant_id = p.tenant_id AND q.name = p.name)
		ORDER BY name`, tenantID)
	if err != nil {
		return nil, fmt.Errorf("active policies: %w", err)
	}
	return ps, nil
}
