-- How far a run's steps are sealed only goes up, and is never forgotten:
-- lowered, the sealer would seal steps twice; raised or removed, the
-- steps past it would wait for a seal for ever. As every guard, these
-- stop a mistake or a script; `runproof ledger verify` finds the rest.

-- +goose Up
-- +goose StatementBegin
CREATE FUNCTION run_seals_only_up() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF (NEW.tenant_id, NEW.run_id) IS DISTINCT FROM (OLD.tenant_id, OLD.run_id) OR NEW.sealed_steps < OLD.sealed_steps THEN
        RAISE EXCEPTION 'how far a run''s steps are sealed only goes up';
    END IF;
    RETURN NEW;
END $$;
-- +goose StatementEnd
CREATE TRIGGER run_seals_only_up BEFORE UPDATE ON run_seals
    FOR EACH ROW EXECUTE FUNCTION run_seals_only_up();
CREATE TRIGGER run_seals_no_delete BEFORE DELETE ON run_seals
    FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER run_seals_no_truncate BEFORE TRUNCATE ON run_seals
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();

-- +goose Down
DROP TRIGGER run_seals_no_truncate ON run_seals;
DROP TRIGGER run_seals_no_delete ON run_seals;
DROP TRIGGER run_seals_only_up ON run_seals;
DROP FUNCTION run_seals_only_up();
