-- Each run with steps not sealed yet waits in steps_unsealed, so the
-- sealer finds them without reading every run. Triggers put the run there
-- (if it is not there yet) as its step count goes up or when it is stored
-- with steps, whatever writes it; the transaction that seals its last step
-- takes it out, after waiting on the run's row for a transaction adding
-- steps to it. Runs stored before and not sealed to their end wait there
-- too: the triggers come first, so that a step an older runproof adds
-- while this migrates is either seen by the backfill or queued by them
-- (creating them waits for the writers of runs, and holds new ones off).
-- The table is not append-only: a row leaves it when its run is sealed;
-- run_seals says how far.

-- +goose Up
CREATE TABLE steps_unsealed (
    tenant_id text COLLATE "C" NOT NULL,
    run_id    text COLLATE "C" NOT NULL,
    PRIMARY KEY (tenant_id, run_id)
);
-- +goose StatementBegin
CREATE FUNCTION runs_steps_wait_for_seal() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO steps_unsealed (tenant_id, run_id) VALUES (NEW.tenant_id, NEW.id) ON CONFLICT DO NOTHING;
    RETURN NULL;
END $$;
-- +goose StatementEnd
CREATE TRIGGER runs_steps_wait_for_seal AFTER UPDATE OF steps ON runs
    FOR EACH ROW WHEN (NEW.steps > OLD.steps) EXECUTE FUNCTION runs_steps_wait_for_seal();
CREATE TRIGGER runs_stored_steps_wait_for_seal AFTER INSERT ON runs
    FOR EACH ROW WHEN (NEW.steps > 0) EXECUTE FUNCTION runs_steps_wait_for_seal();
INSERT INTO steps_unsealed (tenant_id, run_id)
    SELECT r.tenant_id, r.id FROM runs r LEFT JOIN run_seals x ON x.tenant_id = r.tenant_id AND x.run_id = r.id
    WHERE r.steps > coalesce(x.sealed_steps, 0)
    ON CONFLICT DO NOTHING;

-- +goose Down
DROP TRIGGER runs_stored_steps_wait_for_seal ON runs;
DROP TRIGGER runs_steps_wait_for_seal ON runs;
DROP FUNCTION runs_steps_wait_for_seal();
DROP TABLE steps_unsealed;
