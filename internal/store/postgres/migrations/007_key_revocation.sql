-- An API key can be revoked: from then on it authenticates nothing. The
-- row stays, so that audit events keep naming a key that exists, and it
-- changes once only, when revoked: a trigger refuses any other change,
-- un-revoking included. Down fails, changing nothing, once a key is
-- revoked: rolling back would make it valid again.

-- +goose Up
ALTER TABLE api_keys ADD COLUMN revoked_at timestamptz;

-- +goose StatementBegin
CREATE FUNCTION api_keys_revoke_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.revoked_at IS NOT NULL OR NEW.revoked_at IS NULL
        OR (NEW.id, NEW.tenant_id, NEW.role, NEW.name, NEW.hash, NEW.created_at)
           IS DISTINCT FROM (OLD.id, OLD.tenant_id, OLD.role, OLD.name, OLD.hash, OLD.created_at) THEN
        RAISE EXCEPTION 'an API key changes once only: when it is revoked';
    END IF;
    RETURN NEW;
END $$;
-- +goose StatementEnd
CREATE TRIGGER api_keys_revoke_only BEFORE UPDATE ON api_keys
    FOR EACH ROW EXECUTE FUNCTION api_keys_revoke_only();

-- +goose Down
-- +goose StatementBegin
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM api_keys WHERE revoked_at IS NOT NULL) THEN
        RAISE EXCEPTION 'API keys have been revoked: rolling back would make them valid again';
    END IF;
END $$;
-- +goose StatementEnd
DROP TRIGGER api_keys_revoke_only ON api_keys;
DROP FUNCTION api_keys_revoke_only();
ALTER TABLE api_keys DROP COLUMN revoked_at;
