package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/runproof/runproof/internal/runproof"
)

const policyColumns = `tenant_id, id, name, version, type, threshold, action, step_types, expression, created_at`

func scanPolicy(row pgx.Row) (runproof.Policy, error) {
	var p runproof.Policy
	var stepTypes *string
	if err := row.Scan(&p.TenantID, &p.ID, &p.Name, &p.Version, &p.Type, &p.Threshold, &p.Action,
		&stepTypes, &p.Expression, &p.CreatedAt); err != nil {
		return p, err
	}
	p.CreatedAt = runproof.Timestamp(p.CreatedAt)
	return p, unmarshalNull(stepTypes, &p.StepTypes)
}

// CreatePolicy stores p as the next version of the tenant's policy of that
// name, or as version 1 of a new policy.
func (s *Store) CreatePolicy(ctx context.Context, p runproof.Policy) (runproof.Policy, error) {
	stepTypes, err := jsonList(p.StepTypes)
	if err != nil {
		return runproof.Policy{}, fmt.Errorf("create policy: %w", err)
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return runproof.Policy{}, fmt.Errorf("create policy: %w", err)
	}
	defer tx.Rollback(ctx)

	// Concurrent creates of one name wait for each other here, so each reads
	// the version the other wrote. The lock goes with the transaction.
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext($1), hashtext($2))`,
		p.TenantID, p.Name); err != nil {
		return runproof.Policy{}, fmt.Errorf("create policy: %w", err)
	}
	// Every version of a name shares one ID, so max(id) is that ID.
	var id *string
	var version *int
	err = tx.QueryRow(ctx, `
		SELECT max(id), max(version) FROM policies WHERE tenant_id = $1 AND name = $2`,
		p.TenantID, p.Name).Scan(&id, &version)
	if err != nil {
		return runproof.Policy{}, fmt.Errorf("create policy: %w", err)
	}
	p.Version = 1
	if version != nil {
		p.ID, p.Version = *id, *version+1
	}
	p.CreatedAt = runproof.Timestamp(p.CreatedAt)
	if len(p.StepTypes) == 0 {
		p.StepTypes = nil
	}
	_, err = tx.Exec(ctx, `INSERT INTO policies (`+policyColumns+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
		p.TenantID, p.ID, p.Name, p.Version, string(p.Type), p.Threshold, string(p.Action),
		stepTypes, p.Expression, p.CreatedAt)
	if isUnique(err) {
		return runproof.Policy{}, runproof.Errorf(runproof.ECONFLICT, "policy id %q already belongs to a policy other than %q", p.ID, p.Name)
	} else if err != nil {
		return runproof.Policy{}, fmt.Errorf("create policy: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return runproof.Policy{}, fmt.Errorf("create policy: %w", err)
	}
	return p, nil
}

// ActivePolicies returns the latest version of each policy, by name.
func (s *Store) ActivePolicies(ctx context.Context, tenantID string) ([]runproof.Policy, error) {
	ps, err := collect(ctx, s.pool, scanPolicy, `
		SELECT `+policyColumns+` FROM policies p
		WHERE tenant_id = $1 AND version = (
			SELECT max(version) FROM policies q WHERE q.tenant_id = p.tenant_id AND q.name = p.name)
		ORDER BY name`, tenantID)
	if err != nil {
		return nil, fmt.Errorf("active policies: %w", err)
	}
	return ps, nil
}
