-- The lease of an export being made: the process making it renews it
-- while it works, so that one left pending by a process that stopped is
-- known for abandoned once its lease runs out, without waiting an hour.
-- Unlike the export records, a lease changes (it is renewed) and goes
-- (once it has run out): it is the state of a process, not a record.

-- +goose Up
CREATE TABLE export_leases (
    tenant_id  TEXT NOT NULL,
    export_id  TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    PRIMARY KEY (tenant_id, export_id)
) STRICT;
CREATE INDEX export_leases_expiry ON export_leases (tenant_id, expires_at);

-- +goose Down
DROP TABLE export_leases;
