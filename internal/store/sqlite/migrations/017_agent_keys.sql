-- An agent key may be bound to one agent: it opens runs of that agent
-- only, and writes and polls those runs alone. '' for a key bound to no
-- agent, and for every key made before. The binding never changes, as
-- nothing of a key but its revocation does.

-- +goose Up
ALTER TABLE api_keys ADD COLUMN agent_id TEXT NOT NULL DEFAULT '';
DROP TRIGGER api_keys_revoke_only;
-- +goose StatementBegin
CREATE TRIGGER api_keys_revoke_only BEFORE UPDATE ON api_keys
WHEN OLD.revoked_at IS NOT NULL OR NEW.revoked_at IS NULL
    OR NEW.id IS NOT OLD.id OR NEW.tenant_id IS NOT OLD.tenant_id OR NEW.role IS NOT OLD.role
    OR NEW.name IS NOT OLD.name OR NEW.hash IS NOT OLD.hash OR NEW.created_at IS NOT OLD.created_at
    OR NEW.agent_id IS NOT OLD.agent_id
BEGIN SELECT RAISE(ABORT, 'an API key changes once only: when it is revoked'); END;
-- +goose StatementEnd

-- +goose Down
DROP TRIGGER api_keys_revoke_only;
-- +goose StatementBegin
CREATE TRIGGER api_keys_revoke_only BEFORE UPDATE ON api_keys
WHEN OLD.revoked_at IS NOT NULL OR NEW.revoked_at IS NULL
    OR NEW.id IS NOT OLD.id OR NEW.tenant_id IS NOT OLD.tenant_id OR NEW.role IS NOT OLD.role
    OR NEW.name IS NOT OLD.name OR NEW.hash IS NOT OLD.hash OR NEW.created_at IS NOT OLD.created_at
BEGIN SELECT RAISE(ABORT, 'an API key changes once only: when it is revoked'); END;
-- +goose StatementEnd
ALTER TABLE api_keys DROP COLUMN agent_id;
