-- Reviewers' sign-offs on SOC 2 exports (runproof.Review): append-only,
-- like the exports they are of. Down fails, changing nothing, once a
-- review is stored: rolling back would drop sign-offs.

-- +goose Up
CREATE TABLE export_reviews (
    tenant_id   TEXT    NOT NULL,
    id          TEXT    NOT NULL,
    export_id   TEXT    NOT NULL,
    run_id      TEXT    NOT NULL,
    bundle_id   TEXT    NOT NULL,
    status      TEXT    NOT NULL CHECK (status IN ('REVIEWED', 'APPROVED')),
    reviewed_by TEXT    NOT NULL,
    key_id      TEXT    NOT NULL,
    notes       TEXT    NOT NULL,
    run_steps   INTEGER NOT NULL CHECK (run_steps >= 0),
    reviewed_at TEXT    NOT NULL,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, export_id) REFERENCES exports (tenant_id, id)
) STRICT;
CREATE INDEX export_reviews_run ON export_reviews (tenant_id, run_id, reviewed_at, id);

-- +goose StatementBegin
CREATE TRIGGER export_reviews_no_update BEFORE UPDATE ON export_reviews
BEGIN SELECT RAISE(ABORT, 'export reviews are append-only'); END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER export_reviews_no_delete BEFORE DELETE ON export_reviews
BEGIN SELECT RAISE(ABORT, 'export reviews are append-only'); END;
-- +goose StatementEnd

-- +goose Down
CREATE TEMP TABLE export_reviews_guard (reviews INTEGER CHECK (reviews = 0));
INSERT INTO export_reviews_guard SELECT count(*) FROM export_reviews;
DROP TABLE export_reviews_guard;
DROP TABLE export_reviews;
