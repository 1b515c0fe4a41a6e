-- A ZIP export is sealed before it is written: its signed manifest is
-- recorded as a `sealed` export event (the manifest's digest and signing
-- key) and becomes a ledger leaf of its own, whose inclusion proof the ZIP
-- then carries. An export thus has up to two ledger entries, one per entry
-- type: the sealed manifest, then the finished export.
--
-- SQLite cannot change a CHECK or UNIQUE constraint in place, so both
-- tables are rebuilt with every row (and seq) kept; DROP TABLE fires no
-- trigger. Down fails, changing nothing, once a sealed event or a manifest
-- entry exists: the older schema cannot hold them.

-- +goose Up
CREATE TABLE export_events_new (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id       TEXT    NOT NULL,
    export_id       TEXT    NOT NULL,
    kind            TEXT    NOT NULL CHECK (kind IN ('sealed', 'completed', 'failed', 'delivered')),
    at              TEXT    NOT NULL,
    checksum        TEXT    NOT NULL,
    size_bytes      INTEGER NOT NULL,
    bundle_id       TEXT    NOT NULL,
    artifact        TEXT    NOT NULL,
    reason          TEXT    NOT NULL,
    manifest_sha256 TEXT    NOT NULL DEFAULT '',
    key_id          TEXT    NOT NULL DEFAULT '',
    UNIQUE (tenant_id, export_id, kind),
    FOREIGN KEY (tenant_id, export_id) REFERENCES exports (tenant_id, id)
) STRICT;
INSERT INTO export_events_new (seq, tenant_id, export_id, kind, at, checksum, size_bytes, bundle_id, artifact, reason)
    SELECT seq, tenant_id, export_id, kind, at, checksum, size_bytes, bundle_id, artifact, reason FROM export_events;
DROP TABLE export_events;
ALTER TABLE export_events_new RENAME TO export_events;
CREATE UNIQUE INDEX export_events_terminal ON export_events (tenant_id, export_id)
    WHERE kind IN ('completed', 'failed');

CREATE TABLE ledger_entries_new (
    tenant_id  TEXT    NOT NULL,
    idx        INTEGER NOT NULL CHECK (idx >= 0),
    export_id  TEXT    NOT NULL,
    entry_type TEXT    NOT NULL CHECK (entry_type <> ''),
    data       BLOB    NOT NULL,
    created_at TEXT    NOT NULL,
    PRIMARY KEY (tenant_id, idx),
    UNIQUE (tenant_id, export_id, entry_type)
) STRICT;
INSERT INTO ledger_entries_new (tenant_id, idx, export_id, entry_type, data, created_at)
    SELECT tenant_id, idx, export_id, 'runproof.export.v1', data, created_at FROM ledger_entries;
DROP TABLE ledger_entries;
ALTER TABLE ledger_entries_new RENAME TO ledger_entries;

-- +goose StatementBegin
CREATE TRIGGER export_events_no_update BEFORE UPDATE ON export_events
BEGIN SELECT RAISE(ABORT, 'export events are append-only'); END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER export_events_no_delete BEFORE DELETE ON export_events
BEGIN SELECT RAISE(ABORT, 'export events are append-only'); END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER ledger_entries_no_update BEFORE UPDATE ON ledger_entries
BEGIN SELECT RAISE(ABORT, 'ledger entries are append-only'); END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER ledger_entries_no_delete BEFORE DELETE ON ledger_entries
BEGIN SELECT RAISE(ABORT, 'ledger entries are append-only'); END;
-- +goose StatementEnd

-- +goose Down
CREATE TABLE export_events_old (
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
INSERT INTO export_events_old (seq, tenant_id, export_id, kind, at, checksum, size_bytes, bundle_id, artifact, reason)
    SELECT seq, tenant_id, export_id, kind, at, checksum, size_bytes, bundle_id, artifact, reason FROM export_events;
DROP TABLE export_events;
ALTER TABLE export_events_old RENAME TO export_events;
CREATE UNIQUE INDEX export_events_terminal ON export_events (tenant_id, export_id)
    WHERE kind IN ('completed', 'failed');

CREATE TABLE ledger_entries_old (
    tenant_id  TEXT    NOT NULL,
    idx        INTEGER NOT NULL CHECK (idx >= 0),
    export_id  TEXT    NOT NULL,
    data       BLOB    NOT NULL,
    created_at TEXT    NOT NULL,
    PRIMARY KEY (tenant_id, idx),
    UNIQUE (tenant_id, export_id)
) STRICT;
INSERT INTO ledger_entries_old (tenant_id, idx, export_id, data, created_at)
    SELECT tenant_id, idx, export_id, data, created_at FROM ledger_entries;
DROP TABLE ledger_entries;
ALTER TABLE ledger_entries_old RENAME TO ledger_entries;

-- +goose StatementBegin
CREATE TRIGGER export_events_no_update BEFORE UPDATE ON export_events
BEGIN SELECT RAISE(ABORT, 'export events are append-only'); END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER export_events_no_delete BEFORE DELETE ON export_events
BEGIN SELECT RAISE(ABORT, 'export events are append-only'); END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER ledger_entries_no_update BEFORE UPDATE ON ledger_entries
BEGIN SELECT RAISE(ABORT, 'ledger entries are append-only'); END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER ledger_entries_no_delete BEFORE DELETE ON ledger_entries
BEGIN SELECT RAISE(ABORT, 'ledger entries are append-only'); END;
-- +goose StatementEnd
