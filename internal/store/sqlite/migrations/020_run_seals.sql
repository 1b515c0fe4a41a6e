-- How far each run's steps are sealed in its tenant's ledger: the steps
-- entries (runproof.steps.v1) seal them a range at a time, and this says
-- where the next range begins. It is written with the entry that seals
-- the range, in one transaction, and only ever goes up.

-- +goose Up
CREATE TABLE run_seals (
    tenant_id    TEXT    NOT NULL,
    run_id       TEXT    NOT NULL,
    sealed_steps INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, run_id)
) STRICT;

-- +goose Down
DROP TABLE run_seals;
