-- Each run with steps not sealed yet waits in steps_unsealed, so the
-- sealer finds them without reading every run. Triggers put the run there
-- (if it is not there yet) as its step count goes up or when it is stored
-- with steps, whatever writes it; the transaction that seals its last step
-- takes it out. Runs stored before and not sealed to their end wait there
-- too. The table is not append-only: a row leaves it when its run is
-- sealed; run_seals says how far.

-- +goose Up
CREATE TABLE steps_unsealed (
    tenant_id TEXT NOT NULL,
    run_id    TEXT NOT NULL,
    PRIMARY KEY (tenant_id, run_id)
) STRICT;
-- +goose StatementBegin
CREATE TRIGGER runs_steps_wait_for_seal AFTER UPDATE OF steps ON runs WHEN NEW.steps > OLD.steps
BEGIN INSERT OR IGNORE INTO steps_unsealed (tenant_id, run_id) VALUES (NEW.tenant_id, NEW.id); END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER runs_stored_steps_wait_for_seal AFTER INSERT ON runs WHEN NEW.steps > 0
BEGIN INSERT OR IGNORE INTO steps_unsealed (tenant_id, run_id) VALUES (NEW.tenant_id, NEW.id); END;
-- +goose StatementEnd
INSERT OR IGNORE INTO steps_unsealed (tenant_id, run_id)
    SELECT r.tenant_id, r.id FROM runs r LEFT JOIN run_seals x ON x.tenant_id = r.tenant_id AND x.run_id = r.id
    WHERE r.steps > coalesce(x.sealed_steps, 0);

-- +goose Down
DROP TRIGGER runs_stored_steps_wait_for_seal;
DROP TRIGGER runs_steps_wait_for_seal;
DROP TABLE steps_unsealed;
