package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/runproof/runproof/internal/runproof"
)

const policyColumns = `tenant_id, id, name, version, type, threshold, action, step_types, expression, created_at, retired`

func scanPolicy(row scanner) (runproof.Policy, error) {
	var p runproof.Policy
	err := row.Scan(&p.TenantID, &p.ID, &p.Name, &p.Version, &p.Type, &p.Threshold, &p.Action,
		jsonCol{&p.StepTypes}, &p.Expression, timeCol{&p.CreatedAt}, &p.Retired)
	return p, err
}

// CreatePolicies stores each p as the next version of the tenant's policy
// of that name, or as version 1 of a new policy, in one transaction.
func (s *Store) CreatePolicies(ctx context.Context, check func(active []runproof.Policy) error, ps ...runproof.Policy) ([]runproof.Policy, error) {
	if len(ps) == 0 {
		return nil, nil
	}
	// The immediate transaction holds the write lock from BEGIN, so no other
	// writer can come between check and the INSERT, nor take the same
	// version between the SELECT and the INSERT.
	w, err := s.writer(ctx, ordinary, "create policies")
	if err != nil {
		return nil, err
	}
	defer w.Close()
	tx, err := w.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("create policies: %w", err)
	}
	defer tx.Rollback()
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
		var id sql.NullString
		var version sql.NullInt64
		err = tx.QueryRowContext(ctx, `
			SELECT max(id), max(version) FROM policies WHERE tenant_id = ? AND name = ?`,
			p.TenantID, p.Name).Scan(&id, &version)
		if err != nil {
			return nil, fmt.Errorf("create policies: %w", err)
		}
		p.Version, p.Retired = 1, false
		if version.Valid {
			p.ID, p.Version = id.String, int(version.Int64)+1
		}
		if stored[i], err = insertPolicy(ctx, tx, p); err != nil {
			return nil, fmt.Errorf("create policies: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("create policies: %w", err)
	}
	return stored, nil
}

// RetirePolicy stores a copy of the latest version of the tenant's policy
// id, as its next version, that retires it.
func (s *Store) RetirePolicy(ctx context.Context, tenantID, id string, at time.Time) (runproof.Policy, error) {
	w, err := s.writer(ctx, ordinary, "retire policy")
	if err != nil {
		return runproof.Policy{}, err
	}
	defer w.Close()
	tx, err := w.BeginTx(ctx, nil) // immediate: the latest version stays the latest
	if err != nil {
		return runproof.Policy{}, fmt.Errorf("retire policy: %w", err)
	}
	defer tx.Rollback()
	p, err := scanPolicy(tx.QueryRowContext(ctx, `SELECT `+policyColumns+` FROM policies
		WHERE tenant_id = ? AND id = ? ORDER BY version DESC LIMIT 1`, tenantID, id))
	switch {
	case errors.Is(err, sql.ErrNoRows):
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
	if err := tx.Commit(); err != nil {
		return runproof.Policy{}, fmt.Errorf("retire policy: %w", err)
	}
	return p, nil
}

// insertPolicy stores p as it is and returns it as stored.
func insertPolicy(ctx context.Context, tx *sql.Tx, p runproof.Policy) (runproof.Policy, error) {
	p.CreatedAt = runproof.Timestamp(p.CreatedAt)
	if len(p.StepTypes) == 0 {
		p.StepTypes = nil
	}
	stepTypes, err := jsonList(p.StepTypes)
	if err != nil {
		return runproof.Policy{}, err
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO policies (`+policyColumns+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		p.TenantID, p.ID, p.Name, p.Version, string(p.Type), p.Threshold, string(p.Action),
		stepTypes, p.Expression, timeText(p.CreatedAt), p.Retired)
	if isUnique(err) {
		return runproof.Policy{}, runproof.Errorf(runproof.ECONFLICT, "policy id %q already belongs to a policy other than %q", p.ID, p.Name)
	}
	return p, err
}

// PolicyVersions returns every version of the tenant's policy id, oldest
// first.
func (s *Store) PolicyVersions(ctx context.Context, tenantID, id string) ([]runproof.Policy, error) {
	ps, err := collect(ctx, s.db, scanPolicy, `SELECT `+policyColumns+` FROM policies
		WHERE tenant_id = ? AND id = ? ORDER BY version`, tenantID, id)
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
	return activePolicies(ctx, s.db, tenantID)
}

func activePolicies(ctx context.Context, db querier, tenantID string) ([]runproof.Policy, error) {
	ps, err := collect(ctx, db, scanPolicy, `
		SELECT `+policyColumns+` FROM policies p
		WHERE tenant_id = ? AND version = (
			SELECT max(version) FROM policies q WHERE q.tenant_id = p.tenant_id AND q.name = p.name)
		AND NOT retired
		ORDER BY name`, tenantID)
	if err != nil {
		return nil, fmt.Errorf("active policies: %w", err)
	}
	return ps, nil
}
