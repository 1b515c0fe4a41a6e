-- An API key can be revoked: from then on it authenticates nothing. The
-- row stays, so that audit events keep naming a key that exists, and it
-- changes once only, when revoked: a trigger refuses any other change,
-- un-revoking included. Down fails, changing nothing, once a key is
-- revoked: rolling back would make it valid again.

-- +goose Up
ALTER TABLE api_keys ADD COLUMN revoked_at TEXT;

-- +goose StatementBegin
CREATE TRIGGER api_keys_revoke_only BEFORE UPDATE ON api_keys
WHEN OLD.revoked_at IS NOT NULL OR NEW.revoked_at IS NULL
    OR NEW.id IS NOT OLD.id OR NEW.tenant_id IS NOT OLD.tenant_id OR NEW.role IS NOT OLD.role
    OR NEW.name IS NOT OLD.name OR NEW.hash IS NOT OLD.hash OR NEW.created_at IS NOT OLD.created_at
BEGIN SELECT RAISE(ABORT, 'an API key changes once only: when it is revoked'); END;
-- +goose StatementEnd

-- +goose Down
CREATE TEMP TABLE revoked_keys_guard (revoked INTEGER CHECK (revoked = 0));
INSERT INTO revoked_keys_guard SELECT count(*) FROM api_keys WHERE revoked_at IS NOT NULL;
DROP TABLE revoked_keys_guard;
DROP TRIGGER api_keys_revoke_only;
ALTER TABLE api_keys DROP COLUMN revoked_at;
