-- How far each run's steps are sealed in its tenant's ledger: the steps
-- entries (runproof.steps.v1) seal them a range at a time, and this says
-- where the next range begins. It is written with the entry that seals
-- the range, in one transaction, and only ever goes up.

-- +goose Up
CREATE TABLE run_seals (
    tenant_id    text COLLATE "C" NOT NULL,
    run_id       text COLLATE "C" NOT NULL,
    sealed_steps bigint NOT NULL,
    PRIMARY KEY (tenant_id, run_id)
);

-- +goose Down
DROP TABLE run_seals;
