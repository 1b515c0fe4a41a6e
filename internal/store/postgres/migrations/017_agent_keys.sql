-- An agent key may be bound to one agent: it opens runs of that agent
-- only, and writes and polls those runs alone. '' for a key bound to no
-- agent, and for every key made before. The binding never changes, as
-- nothing of a key but its revocation does.

-- +goose Up
ALTER TABLE api_keys ADD COLUMN agent_id text COLLATE "C" NOT NULL DEFAULT '';
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION api_keys_revoke_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.revoked_at IS NOT NULL OR NEW.revoked_at IS NULL
        OR (NEW.id, NEW.tenant_id, NEW.role, NEW.name, NEW.hash, NEW.created_at, NEW.agent_id)
           IS DISTINCT FROM (OLD.id, OLD.tenant_id, OLD.role, OLD.name, OLD.hash, OLD.created_at, OLD.agent_id) THEN
        RAISE EXCEPTION 'an API key changes once only: when it is revoked';
    END IF;
    RETURN NEW;
END $$;
-- +goose StatementEnd

-- +goose Down
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION api_keys_revoke_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.revoked_at IS NOT NULL OR NEW.revoked_at IS NULL
        OR (NEW.id, NEW.tenant_id, NEW.role, NEW.name, NEW.hash, NEW.created_at)
           IS DISTINCT FROM (OLD.id, OLD.tenant_id, OLD.role, OLD.name, OLD.hash, OLD.created_at) THEN
        RAISE EXCEPTION 'an API key changes once only: when it is revoked';
    END IF;
    RETURN NEW;
END $$;
-- +goose StatementEnd
ALTER TABLE api_keys DROP COLUMN agent_id;
