-- The export ledger (internal/ledger): one Merkle tree per tenant in the
-- form of the Go checksum database. Entries are the leaves, hashes the
-- tree's stored hashes (tlog.StoredHashIndex), checkpoints the signed tree
-- heads, all of them kept. Nothing here is ever changed; `runproof ledger
-- verify` recomputes it all from the export records. Appends to one
-- tenant's tree are serialised by a transaction-scoped advisory lock (see
-- AppendLedger), so that servers sharing the database never fork it.

-- +goose Up
CREATE TABLE ledger_entries (
    tenant_id  text COLLATE "C" NOT NULL,
    idx        bigint NOT NULL CHECK (idx >= 0),
    export_id  text COLLATE "C" NOT NULL,
    data       bytea NOT NULL,
    created_at timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, idx),
    UNIQUE (tenant_id, export_id)
);

CREATE TABLE ledger_hashes (
    tenant_id text COLLATE "C" NOT NULL,
    idx       bigint NOT NULL CHECK (idx >= 0),
    hash      bytea NOT NULL CHECK (length(hash) = 32),
    PRIMARY KEY (tenant_id, idx)
);

CREATE TABLE ledger_checkpoints (
    tenant_id    text COLLATE "C" NOT NULL,
    tree_size    bigint NOT NULL CHECK (tree_size > 0),
    hash         bytea NOT NULL CHECK (length(hash) = 32),
    note         bytea NOT NULL,
    verifier_key text NOT NULL,
    created_at   timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, tree_size)
);

CREATE TRIGGER ledger_entries_append_only BEFORE UPDATE OR DELETE ON ledger_entries
    FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER ledger_entries_no_truncate BEFORE TRUNCATE ON ledger_entries
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();
CREATE TRIGGER ledger_hashes_append_only BEFORE UPDATE OR DELETE ON ledger_hashes
    FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER ledger_hashes_no_truncate BEFORE TRUNCATE ON ledger_hashes
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();
CREATE TRIGGER ledger_checkpoints_append_only BEFORE UPDATE OR DELETE ON ledger_checkpoints
    FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER ledger_checkpoints_no_truncate BEFORE TRUNCATE ON ledger_checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();

-- +goose Down
DROP TABLE ledger_checkpoints;
DROP TABLE ledger_hashes;
DROP TABLE ledger_entries;
