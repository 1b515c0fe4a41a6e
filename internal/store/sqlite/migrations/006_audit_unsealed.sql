-- Each audit event waits for its ledger entry in audit_unsealed, written in
-- the same transaction as the event and deleted in the same transaction as
-- the entry, so the sealer never depends on clocks or scans the whole audit
-- log: it takes the waiting events oldest first, a batch at a time
-- (audit_unsealed_oldest). The events stored before and not in the ledger
-- yet wait there too. The table is not append-only: a row leaves it when
-- sealed. A development build made the table in 005, hence IF NOT EXISTS.

-- +goose Up
CREATE TABLE IF NOT EXISTS audit_unsealed (
    tenant_id   TEXT NOT NULL,
    id          TEXT NOT NULL,
    occurred_at TEXT NOT NULL,
    PRIMARY KEY (tenant_id, id)
) STRICT;
INSERT OR IGNORE INTO audit_unsealed (tenant_id, id, occurred_at)
    SELECT a.tenant_id, a.id, a.occurred_at FROM audit_events a
    WHERE NOT EXISTS (SELECT 1 FROM ledger_entries l
        WHERE l.tenant_id = a.tenant_id AND l.export_id = a.id AND l.entry_type = 'runproof.audit.v1');
CREATE INDEX IF NOT EXISTS audit_unsealed_oldest ON audit_unsealed (tenant_id, occurred_at, id);
DROP INDEX IF EXISTS audit_occurred_all;

-- +goose Down
DROP TABLE audit_unsealed;
CREATE INDEX audit_occurred_all ON audit_events (occurred_at);
