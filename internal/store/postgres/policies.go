package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/runproof/runproof/internal/runproof"
)

const policyColumns = `tenant_id, id, name, version, type, threshold, action, step_types, expression, created_at, retired`

func scanPolicy(row pgx.Row) (runproof.Policy, error) {
	var p runproof.Policy
	var stepTypes *string
	if err := row.Scan(&p.TenantID, &p.ID, &p.Name, &p.Version, &p.Type, &p.Threshold, &p.Action,
		&stepTypes, &p.Expression, &p.CreatedAt, &p.Retired); err != nil {
		return p, err
	}
	p.CreatedAt = runproof.Timestamp(p.CreatedAt)
	return p, unmarshalNull(stepTypes, &p.StepTypes)
}

// CreatePolicies stores each p as the next version of the tenant's policy
// of that name, or as version 1 of a new policy, in one transaction.
func (s *Store) CreatePolicies(ctx context.Context, check func(active []runproof.Policy) error, ps ...runproof.Policy) ([]runproof.Policy, error) {
	if len(ps) == 0 {
		return nil, nil
	}
	tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.ReadCommitted}) // reads what the lock's last holder wrote
	if err != nil {
		return nil, fmt.Errorf("create policies: %w", err)
	}
	defer tx.Rollback(ctx)

	if err := lockPolicies(ctx, tx, ps[0].TenantID); err != nil {
		return nil, fmt.Errorf("create policies: %w", err)
	}
	if check != nil {
		active, err := activePolicies(ctx, tx, ps[0].TenantID)
		if err != nil {
			return nil, err
		}
		if err := check(active); err != nil {
			return nil, err
		}
	}
	stored := make([]runproof.Policy, len(ps))
	for i, p := range ps {
		// Every version of a name shares one ID, so max(id) is that ID.
		var id *string
		var version *int
		err = tx.QueryRow(ctx, `
			SELECT max(id), max(version) FROM policies WHERE tenant_id = $1 AND name = $2`,
			p.TenantID, p.Name).Scan(&id, &version)
		if err != nil {
			return nil, fmt.Errorf("create policies: %w", err)
		}
		p.Version, p.Retired = 1, false
		if version != nil {
			p.ID, p.Version = *id, *version+1
		}
		if stored[i], err = insertPolicy(ctx, tx, p); err != nil {
			return nil, fmt.Errorf("create policies: %w", err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, fmt.Errorf("create policies: %w", err)
	}
	return stored, nil
}

// lockPolicies makes the writes of a tenant's policies wait for each
// other, from every pool and every server on the database, so that each
// reads what the other wrote (in read committed, whatever the database's
// default: a snapshot taken before the wait would not hold it): the
// versions of a name, and the active policies a new one is checked
// against. The lock, named after the schema and the tenant, goes with the
// transaction.
func lockPolicies(ctx context.Context, tx pgx.Tx, tenantID string) error {
	_, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(
		hashtextextended('runproof policies ' || current_schema() || ' ' || $1, 0))`, tenantID)
	return err
}

// RetirePolicy stores a copy of the latest version of the tenant's policy
// id, as its next version, that retires it.
func (s *Store) RetirePolicy(ctx context.Context, tenantID, id string, at time.Time) (runproof.Policy, error) {
	tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.ReadCommitted}) // reads what the lock's last holder wrote
	if err != nil {
		return runproof.Policy{}, fmt.Errorf("retire policy: %w", err)
	}
	defer tx.Rollback(ctx)
	// The lock first, as CreatePolicies takes it, then the latest version
	// under the lock.
	if err := lockPolicies(ctx, tx, tenantID); err != nil {
		return runproof.Policy{}, fmt.Errorf("retire policy: %w", err)
	}
	p, err := scanPolicy(tx.QueryRow(ctx, `SELECT `+policyColumns+` FROM policies
		WHERE tenant_id = $1 AND id = $2 ORDER BY version DESC LIMIT 1`, tenantID, id))
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return runproof.Policy{}, runproof.Errorf(runproof.ENOTFOUND, "tenant %q has no policy of id %q (policies are named here by id, as the list of policies gives it, not by name)", tenantID, id)
	case err != nil:
		return runproof.Policy{}, fmt.Errorf("retire policy: %w", err)
	}
	if p, err = p.Retiring(at); err != nil {
		return runproof.Policy{}, err
	}
	if p, err = insertPolicy(ctx, tx, p); err != nil {
		return runproof.Policy{}, fmt.Errorf("retire policy: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return runproof.Policy{}, fmt.Errorf("retire policy: %w", err)
	}
	return p, nil
}

// insertPolicy stores p as it is and returns it as stored.
func insertPolicy(ctx context.Context, tx pgx.Tx, p runproof.Policy) (runproof.Policy, error) {
	p.CreatedAt = runproof.Timestamp(p.CreatedAt)
	if len(p.StepTypes) == 0 {
		p.StepTypes = nil
	}
	stepTypes, err := jsonList(p.StepTypes)
	if err != nil {
		return runproof.Policy{}, err
	}
	_, err = tx.Exec(ctx, `INSERT INTO policies (`+policyColumns+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
		p.TenantID, p.ID, p.Name, p.Version, string(p.Type), p.Threshold, string(p.Action),
		stepTypes, p.Expression, p.CreatedAt, p.Retired)
	if isUnique(err) {
		return runproof.Policy{}, runproof.Errorf(runproof.ECONFLICT, "policy id %q already belongs to a policy other than %q", p.ID, p.Name)
	}
	return p, err
}

// PolicyVersions returns every version of the tenant's policy id, oldest
// first.
func (s *Store) PolicyVersions(ctx context.Context, tenantID, id string) ([]runproof.Policy, error) {
	ps, err := collect(ctx, s.pool, scanPolicy, `SELECT `+policyColumns+` FROM policies
		WHERE tenant_id = $1 AND id = $2 ORDER BY version`, tenantID, id)
	if err != nil {
		return nil, fmt.Errorf("policy versions: %w", err)
	}
	if len(ps) == 0 {
		return nil, runproof.Errorf(runproof.ENOTFOUND, "tenant %q has no policy of id %q (policies are named here by id, as the list of policies gives it, not by name)", tenantID, id)
	}
	return ps, nil
}

// ActivePolicies returns the latest version of each policy, by name.
func (s *Store) ActivePolicies(ctx context.Context, tenantID string) ([]runproof.Policy, error) {
	return activePolicies(ctx, s.pool, tenantID)
}

func activePolicies(ctx context.Context, db querier, tenantID string) ([]runproof.Policy, error) {
	ps, err := collect(ctx, db, scanPolicy, `
		SELECT `+policyColumns+` FROM policies p
		WHERE tenant_id = $1 AND version = (
			SELECT max(version) FROM policies q WHERE q.tenant_id = p.tenant_id AND q.name = p.name)
		AND NOT retired
		ORDER BY name`, tenantID)
	if err != nil {
		return nil, fmt.Errorf("active policies: %w", err)
	}
	return ps, nil
}
