package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/runproof/runproof/internal/runproof"
)

// CreateAPIKey stores a key; ECONFLICT when its ID or hash exists.
func (s *Store) CreateAPIKey(ctx context.Context, k runproof.APIKey) error {
	w, err := s.writer(ctx, ordinary, "create API key")
	if err != nil {
		return err
	}
	defer w.Close()
	_, err = w.ExecContext(ctx, `
		INSERT INTO api_keys (id, tenant_id, role, name, agent_id, hash, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?)`,
		k.ID, k.TenantID, string(k.Role), k.Name, k.AgentID, k.Hash, timeText(k.CreatedAt))
	if isUnique(err) {
		return runproof.Errorf(runproof.ECONFLICT, "API key %q already exists", k.ID)
	} else if err != nil {
		return fmt.Errorf("create API key: %w", err)
	}
	return nil
}

const apiKeyColumns = `id, tenant_id, role, name, agent_id, hash, created_at, revoked_at`

func scanAPIKey(row scanner) (runproof.APIKey, error) {
	var k runproof.APIKey
	err := row.Scan(&k.ID, &k.TenantID, &k.Role, &k.Name, &k.AgentID, &k.Hash, timeCol{&k.CreatedAt}, nullTimeCol{&k.RevokedAt})
	return k, err
}

// APIKeyByHash finds a key by the SHA-256 of its secret.
func (s *Store) APIKeyByHash(ctx context.Context, hash string) (runproof.APIKey, error) {
	k, err := scanAPIKey(s.db.QueryRowContext(ctx, `SELECT `+apiKeyColumns+` FROM api_keys WHERE hash = ?`, hash))
	if errors.Is(err, sql.ErrNoRows) {
		return runproof.APIKey{}, runproof.Errorf(runproof.ENOTFOUND, "API key not found")
	} else if err != nil {
		return runproof.APIKey{}, fmt.Errorf("API key by hash: %w", err)
	}
	return k, nil
}

// APIKey returns one of the tenant's keys by its id.
func (s *Store) APIKey(ctx context.Context, tenantID, keyID string) (runproof.APIKey, error) {
	k, err := scanAPIKey(s.db.QueryRowContext(ctx, `SELECT `+apiKeyColumns+` FROM api_keys WHERE tenant_id = ? AND id = ?`, tenantID, keyID))
	if errors.Is(err, sql.ErrNoRows) {
		return runproof.APIKey{}, runproof.Errorf(runproof.ENOTFOUND, "API key %q not found", keyID)
	} else if err != nil {
		return runproof.APIKey{}, fmt.Errorf("API key: %w", err)
	}
	return k, nil
}

// ListAPIKeys returns the tenant's keys, oldest first.
func (s *Store) ListAPIKeys(ctx context.Context, tenantID string) ([]runproof.APIKey, error) {
	keys, err := collect(ctx, s.db, scanAPIKey, `SELECT `+apiKeyColumns+` FROM api_keys
		WHERE tenant_id = ? ORDER BY created_at, id`, tenantID)
	if err != nil {
		return nil, fmt.Errorf("list API keys: %w", err)
	}
	return keys, nil
}

// RevokeAPIKey marks a key revoked, once.
func (s *Store) RevokeAPIKey(ctx context.Context, tenantID, keyID string, at time.Time) (runproof.APIKey, error) {
	w, err := s.writer(ctx, ordinary, "revoke API key")
	if err != nil {
		return runproof.APIKey{}, err
	}
	defer w.Close()
	k, err := scanAPIKey(w.QueryRowContext(ctx, `UPDATE api_keys SET revoked_at = ?
		WHERE tenant_id = ? AND id = ? AND revoked_at IS NULL RETURNING `+apiKeyColumns, timeText(at), tenantID, keyID))
	if errors.Is(err, sql.ErrNoRows) { // no such key, or revoked already
		var revoked sql.NullString
		err = s.db.QueryRowContext(ctx, `SELECT revoked_at FROM api_keys WHERE tenant_id = ? AND id = ?`, tenantID, keyID).Scan(&revoked)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			return runproof.APIKey{}, runproof.Errorf(runproof.ENOTFOUND, "tenant %q has no API key %q", tenantID, keyID)
		case err == nil:
			return runproof.APIKey{}, runproof.Errorf(runproof.ECONFLICT, "API key %q was revoked at %s already", keyID, revoked.String)
		}
	}
	if err != nil {
		return runproof.APIKey{}, fmt.Errorf("revoke API key: %w", err)
	}
	return k, nil
}
