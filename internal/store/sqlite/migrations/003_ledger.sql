-- The export ledger (internal/ledger): one Merkle tree per tenant in the
-- form of the Go checksum database. Entries are the leaves, hashes the
-- tree's stored hashes (tlog.StoredHashIndex), checkpoints the signed tree
-- heads, all of them kept. Nothing here is ever changed; `runproof ledger
-- verify` recomputes it all from the export records.

-- +goose Up
CREATE TABLE ledger_entries (
    tenant_id  TEXT    NOT NULL,
    idx        INTEGER NOT NULL CHECK (idx >= 0),
    export_id  TEXT    NOT NULL,
    data       BLOB    NOT NULL,
    created_at TEXT    NOT NULL,
    PRIMARY KEY (tenant_id, idx),
    UNIQUE (tenant_id, export_id)
) STRICT;

CREATE TABLE ledger_hashes (
    tenant_id TEXT    NOT NULL,
    idx       INTEGER NOT NULL CHECK (idx >= 0),
    hash      BLOB    NOT NULL CHECK (length(hash) = 32),
    PRIMARY KEY (tenant_id, idx)
) STRICT, WITHOUT ROWID;

CREATE TABLE ledger_checkpoints (
    tenant_id    TEXT    NOT NULL,
    tree_size    INTEGER NOT NULL CHECK (tree_size > 0),
    hash         BLOB    NOT NULL CHECK (length(hash) = 32),
    note         BLOB    NOT NULL,
    verifier_key TEXT    NOT NULL,
    created_at   TEXT    NOT NULL,
    PRIMARY KEY (tenant_id, tree_size)
) STRICT;

-- +goose StatementBegin
CREATE TRIGGER ledger_entries_no_update BEFORE UPDATE ON ledger_entries
BEGIN SELECT RAISE(ABORT, 'ledger entries are append-only'); END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER ledger_entries_no_delete BEFORE DELETE ON ledger_entries
BEGIN SELECT RAISE(ABORT, 'ledger entries are append-only'); END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER ledger_hashes_no_update BEFORE UPDATE ON ledger_hashes
BEGIN SELECT RAISE(ABORT, 'ledger hashes are append-only'); END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER ledger_hashes_no_delete BEFORE DELETE ON ledger_hashes
BEGIN SELECT RAISE(ABORT, 'ledger hashes are append-only'); END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER ledger_checkpoints_no_update BEFORE UPDATE ON ledger_checkpoints
BEGIN SELECT RAISE(ABORT, 'ledger checkpoints are append-only'); END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER ledger_checkpoints_no_delete BEFORE DELETE ON ledger_checkpoints
BEGIN SELECT RAISE(ABORT, 'ledger checkpoints are append-only'); END;
-- +goose StatementEnd

-- +goose Down
DROP TABLE ledger_checkpoints;
DROP TABLE ledger_hashes;
DROP TABLE ledger_entries;
