-- The sealer takes the audit events that wait for their ledger entry
-- oldest first, a batch at a time: this index gives it each batch without
-- walking the events already sealed.

-- +goose Up
CREATE INDEX audit_unsealed_oldest ON audit_unsealed (tenant_id, occurred_at, id);

-- +goose Down
DROP INDEX audit_unsealed_oldest;
