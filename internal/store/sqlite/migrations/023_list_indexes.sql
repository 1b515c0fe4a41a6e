-- Indexes for two lists a dashboard reads: runs of one status (running,
-- stopped, failed…) newest first, and the system's own audit events (the
-- system topic: those not of an API request, or of the system actor),
-- which without them read every run or every audit event of the tenant.

-- +goose Up
CREATE INDEX runs_status ON runs (tenant_id, status, started_at DESC, id DESC);
CREATE INDEX audit_system ON audit_events (tenant_id, occurred_at DESC, id DESC)
    WHERE source_component <> 'api' OR actor = 'system';

-- +goose Down
DROP INDEX audit_system;
DROP INDEX runs_status;
