-- Reviewers' sign-offs on SOC 2 exports (runproof.Review): append-only,
-- like the exports they are of. Down fails, changing nothing, once a
-- review is stored: rolling back would drop sign-offs.

-- +goose Up
CREATE TABLE export_reviews (
    tenant_id   text COLLATE "C" NOT NULL,
    id          text COLLATE "C" NOT NULL,
    export_id   text COLLATE "C" NOT NULL,
    run_id      text COLLATE "C" NOT NULL,
    bundle_id   text NOT NULL,
    status      text NOT NULL CHECK (status IN ('REVIEWED', 'APPROVED')),
    reviewed_by text NOT NULL,
    key_id      text NOT NULL,
    notes       text NOT NULL,
    run_steps   bigint NOT NULL CHECK (run_steps >= 0),
    reviewed_at timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, export_id) REFERENCES exports (tenant_id, id)
);
CREATE INDEX export_reviews_run ON export_reviews (tenant_id, run_id, reviewed_at, id);

CREATE TRIGGER export_reviews_append_only BEFORE UPDATE OR DELETE ON export_reviews
    FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER export_reviews_no_truncate BEFORE TRUNCATE ON export_reviews
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();

-- +goose Down
-- +goose StatementBegin
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM export_reviews) THEN
        RAISE EXCEPTION 'SOC 2 exports have been reviewed: rolling back would drop the reviews';
    END IF;
END $$;
-- +goose StatementEnd
DROP TABLE export_reviews;
