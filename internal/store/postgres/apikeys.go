package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/runproof/runproof/internal/runproof"
)

// CreateAPIKey stores a key; ECONFLICT when its ID or hash exists.
func (s *Store) CreateAPIKey(ctx context.Context, k runproof.APIKey) error {
	_, err := s.pool.Exec(ctx, `
		INSERT INTO api_keys (id, tenant_id, role, name, agent_id, hash, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7)`,
		k.ID, k.TenantID, string(k.Role), k.Name, k.AgentID, k.Hash, runproof.Timestamp(k.CreatedAt))
	if isUnique(err) {
		return runproof.Errorf(runproof.ECONFLICT, "API key %q already exists", k.ID)
	} else if err != nil {
		return fmt.Errorf("create API key: %w", err)
	}
	return nil
}

const apiKeyColumns = `id, tenant_id, role, name, agent_id, hash, created_at, revoked_at`

func scanAPIKey(row pgx.Row) (runproof.APIKey, error) {
	var k runproof.APIKey
	err := row.Scan(&k.ID, &k.TenantID, &k.Role, &k.Name, &k.AgentID, &k.Hash, &k.CreatedAt, &k.RevokedAt)
	k.CreatedAt = runproof.Timestamp(k.CreatedAt)
	if k.RevokedAt != nil {
		t := runproof.Timestamp(*k.RevokedAt)
		k.RevokedAt = &t
	}
	return k, err
}

// APIKeyByHash finds a key by the SHA-256 of its secret.
func (s *Store) APIKeyByHash(ctx context.Context, hash string) (runproof.APIKey, error) {
	k, err := scanAPIKey(s.pool.QueryRow(ctx, `SELECT `+apiKeyColumns+` FROM api_keys WHERE hash = $1`, hash))
	if errors.Is(err, pgx.ErrNoRows) {
		return runproof.APIKey{}, runproof.Errorf(runproof.ENOTFOUND, "API key not found")
	} else if err != nil {
		return runproof.APIKey{}, fmt.Errorf("API key by hash: %w", err)
	}
	return k, nil
}

// APIKey returns one of the tenant's keys by its id.
func (s *Store) APIKey(ctx context.Context, tenantID, keyID string) (runproof.APIKey, error) {
	k, err := scanAPIKey(s.pool.QueryRow(ctx, `SELECT `+apiKeyColumns+` FROM api_keys WHERE tenant_id = $1 AND id = $2`, tenantID, keyID))
	if errors.Is(err, pgx.ErrNoRows) {
		return runproof.APIKey{}, runproof.Errorf(runproof.ENOTFOUND, "API key %q not found", keyID)
	} else if err != nil {
		return runproof.APIKey{}, fmt.Errorf("API key: %w", err)
	}
	return k, nil
}

// ListAPIKeys returns the tenant's keys, oldest first.
func (s *Store) ListAPIKeys(ctx context.Context, tenantID string) ([]runproof.APIKey, error) {
	keys, err := collect(ctx, s.pool, scanAPIKey, `SELECT `+apiKeyColumns+` FROM api_keys
		WHERE tenant_id = $1 ORDER BY created_at, id`, tenantID)
	if err != nil {
		return nil, fmt.Errorf("list API keys: %w", err)
	}
	return keys, nil
}

// RevokeAPIKey marks a key revoked, once.
func (s *Store) RevokeAPIKey(ctx context.Context, tenantID, keyID string, at time.Time) (runproof.APIKey, error) {
	k, err := scanAPIKey(s.pool.QueryRow(ctx, `UPDATE api_keys SET revoked_at = $1
		WHERE tenant_id = $2 AND id = $3 AND revoked_at IS NULL RETURNING `+apiKeyColumns, runproof.Timestamp(at), tenantID, keyID))
	if errors.Is(err, pgx.ErrNoRows) { // no such key, or revoked already
		var revoked time.Time
		err = s.pool.QueryRow(ctx, `SELECT revoked_at FROM api_keys WHERE tenant_id = $1 AND id = $2`, tenantID, keyID).Scan(&revoked)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			return runproof.APIKey{}, runproof.Errorf(runproof.ENOTFOUND, "tenant %q has no API key %q", tenantID, keyID)
		case err == nil:
			return runproof.APIKey{}, runproof.Errorf(runproof.ECONFLICT, "API key %q was revoked at %s already", keyID, runproof.FormatTime(revoked))
		}
	}
	if err != nil {
		return runproof.APIKey{}, fmt.Errorf("revoke API key: %w", err)
	}
	return k, nil
}
