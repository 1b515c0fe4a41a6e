-- Audit events become entries of their tenant's ledger, appended in
-- batches after they occur: the sealer looks for the events of recent
-- tenants that are not in the ledger yet, by time.

-- +goose Up
CREATE INDEX audit_occurred_all ON audit_events (occurred_at);

-- +goose Down
DROP INDEX audit_occurred_all;
