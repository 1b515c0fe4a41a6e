-- Export records (DOMAIN.md "Export record"): the request, then its
-- lifecycle as events. Neither is ever changed: the record the API shows is
-- the fold of the two (runproof.FoldExport).

-- +goose Up
CREATE TABLE exports (
    tenant_id        TEXT NOT NULL,
    id               TEXT NOT NULL,
    scope            TEXT NOT NULL,
    run_id           TEXT NOT NULL, -- '' when none
    incident_id      TEXT NOT NULL, -- '' when none
    bundle_type      TEXT NOT NULL,
    format           TEXT NOT NULL,
    requested_by     TEXT NOT NULL,
    origin           TEXT NOT NULL,
    source_component TEXT NOT NULL,
    correlation_id   TEXT NOT NULL,
    export_reason    TEXT NOT NULL,
    period_start     TEXT,
    period_end       TEXT,
    created_at       TEXT NOT NULL,
    PRIMARY KEY (tenant_id, id)
) STRICT;
CREATE INDEX exports_created ON exports (tenant_id, created_at DESC, id DESC);
CREATE INDEX exports_run ON exports (tenant_id, run_id);
CREATE INDEX exports_incident ON exports (tenant_id, incident_id);

-- seq is the global append order of events (AUTOINCREMENT: never reused).
-- SQLite has one writer at a time, so seq order is also commit order.
CREATE TABLE export_events (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id  TEXT    NOT NULL,
    export_id  TEXT    NOT NULL,
    kind       TEXT    NOT NULL CHECK (kind IN ('completed', 'failed', 'delivered')),
    at         TEXT    NOT NULL,
    checksum   TEXT    NOT NULL,
    size_bytes INTEGER NOT NULL,
    bundle_id  TEXT    NOT NULL,
    artifact   TEXT    NOT NULL,
    reason     TEXT    NOT NULL,
    UNIQUE (tenant_id, export_id, kind),
    FOREIGN KEY (tenant_id, export_id) REFERENCES exports (tenant_id, id)
) STRICT;
-- An export ends once: completed or failed, never both.
CREATE UNIQUE INDEX export_events_terminal ON export_events (tenant_id, export_id)
    WHERE kind IN ('completed', 'failed');

-- +goose StatementBegin
CREATE TRIGGER exports_no_update BEFORE UPDATE ON exports
BEGIN SELECT RAISE(ABORT, 'exports are append-only'); END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER exports_no_delete BEFORE DELETE ON exports
BEGIN SELECT RAISE(ABORT, 'exports are append-only'); END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER export_events_no_update BEFORE UPDATE ON export_events
BEGIN SELECT RAISE(ABORT, 'export events are append-only'); END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER export_events_no_delete BEFORE DELETE ON export_events
BEGIN SELECT RAISE(ABORT, 'export events are append-only'); END;
-- +goose StatementEnd

-- +goose Down
DROP TABLE export_events;
DROP TABLE exports;
