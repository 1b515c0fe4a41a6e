-- Export records (DOMAIN.md "Export record"): the request, then its
-- lifecycle as events. Neither is ever changed: the record the API shows is
-- the fold of the two (runproof.FoldExport).

-- +goose Up
CREATE TABLE exports (
    tenant_id        text COLLATE "C" NOT NULL,
    id               text COLLATE "C" NOT NULL,
    scope            text NOT NULL,
    run_id           text COLLATE "C" NOT NULL, -- '' when none
    incident_id      text COLLATE "C" NOT NULL, -- '' when none
    bundle_type      text NOT NULL,
    format           text NOT NULL,
    requested_by     text NOT NULL,
    origin           text NOT NULL,
    source_component text NOT NULL,
    correlation_id   text NOT NULL,
    export_reason    text NOT NULL,
    period_start     timestamptz,
    period_end       timestamptz,
    created_at       timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX exports_created ON exports (tenant_id, created_at DESC, id DESC);
CREATE INDEX exports_run ON exports (tenant_id, run_id);
CREATE INDEX exports_incident ON exports (tenant_id, incident_id);

-- seq is the global append order of events. A sequence alone does not give
-- commit order under concurrency, so the store appends events under a lock
-- on this table (see AppendExportEvent).
CREATE TABLE export_events (
    seq        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id  text COLLATE "C" NOT NULL,
    export_id  text COLLATE "C" NOT NULL,
    kind       text NOT NULL CHECK (kind IN ('completed', 'failed', 'delivered')),
    at         timestamptz NOT NULL,
    checksum   text NOT NULL,
    size_bytes bigint NOT NULL,
    bundle_id  text NOT NULL,
    artifact   text NOT NULL,
    reason     text NOT NULL,
    UNIQUE (tenant_id, export_id, kind),
    FOREIGN KEY (tenant_id, export_id) REFERENCES exports (tenant_id, id)
);
-- An export ends once: completed or failed, never both.
CREATE UNIQUE INDEX export_events_terminal ON export_events (tenant_id, export_id)
    WHERE kind IN ('completed', 'failed');

CREATE TRIGGER exports_append_only BEFORE UPDATE OR DELETE ON exports
    FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER exports_no_truncate BEFORE TRUNCATE ON exports
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();
CREATE TRIGGER export_events_append_only BEFORE UPDATE OR DELETE ON export_events
    FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER export_events_no_truncate BEFORE TRUNCATE ON export_events
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();

-- +goose Down
DROP TABLE export_events;
DROP TABLE exports;
