-- A ZIP export is sealed before it is written: its signed manifest is
-- recorded as a `sealed` export event (the manifest's digest and signing
-- key) and becomes a ledger leaf of its own, whose inclusion proof the ZIP
-- then carries. An export thus has up to two ledger entries, one per entry
-- type: the sealed manifest, then the finished export. Schema changes fire
-- no row trigger. Down fails, changing nothing, once a sealed event or a
-- manifest entry exists: the older schema cannot hold them.

-- +goose Up
ALTER TABLE export_events DROP CONSTRAINT export_events_kind_check;
ALTER TABLE export_events ADD CONSTRAINT export_events_kind_check
    CHECK (kind IN ('sealed', 'completed', 'failed', 'delivered'));
ALTER TABLE export_events
    ADD COLUMN manifest_sha256 text NOT NULL DEFAULT '',
    ADD COLUMN key_id          text NOT NULL DEFAULT '';

ALTER TABLE ledger_entries ADD COLUMN entry_type text COLLATE "C" NOT NULL
    DEFAULT 'runproof.export.v1' CHECK (entry_type <> '');
ALTER TABLE ledger_entries ALTER COLUMN entry_type DROP DEFAULT;
ALTER TABLE ledger_entries DROP CONSTRAINT ledger_entries_tenant_id_export_id_key;
ALTER TABLE ledger_entries ADD CONSTRAINT ledger_entries_tenant_id_export_id_entry_type_key
    UNIQUE (tenant_id, export_id, entry_type);

-- +goose Down
ALTER TABLE ledger_entries DROP CONSTRAINT ledger_entries_tenant_id_export_id_entry_type_key;
ALTER TABLE ledger_entries ADD CONSTRAINT ledger_entries_tenant_id_export_id_key UNIQUE (tenant_id, export_id);
ALTER TABLE ledger_entries DROP COLUMN entry_type;

ALTER TABLE export_events DROP COLUMN key_id, DROP COLUMN manifest_sha256;
ALTER TABLE export_events DROP CONSTRAINT export_events_kind_check;
ALTER TABLE export_events ADD CONSTRAINT export_events_kind_check
    CHECK (kind IN ('completed', 'failed', 'delivered'));
