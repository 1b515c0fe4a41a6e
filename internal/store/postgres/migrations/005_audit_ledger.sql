-- Audit events become entries of their tenant's ledger, appended in
-- batches after they are stored. Each event waits in audit_unsealed,
-- written in the same transaction as the event and deleted in the same
-- transaction as its ledger entry, so the sealer never depends on clocks
-- or scans the whole audit log. Events stored before this version wait
-- there too. The table is not append-only: a row leaves it when sealed.

-- +goose Up
CREATE TABLE audit_unsealed (
    tenant_id   text COLLATE "C" NOT NULL,
    id          text COLLATE "C" NOT NULL,
    occurred_at timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
INSERT INTO audit_unsealed (tenant_id, id, occurred_at) SELECT tenant_id, id, occurred_at FROM audit_events;

-- +goose Down
DROP TABLE audit_unsealed;
