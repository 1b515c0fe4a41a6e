-- An API key can be revoked: from then on it authenticates nothing. The
-- row stays, so that audit events keep naming a key that exists.

-- +goose Up
ALTER TABLE api_keys ADD COLUMN revoked_at timestamptz;

-- +goose Down
ALTER TABLE api_keys DROP COLUMN revoked_at;
