-- The first schema of runproof on SQLite. Times are TEXT written by
-- runproof.FormatTime (UTC, six fractional digits), so text order is time
-- order; money and durations are integers; JSON is TEXT kept byte for byte.

-- +goose Up
CREATE TABLE api_keys (
    id         TEXT NOT NULL PRIMARY KEY,
    tenant_id  TEXT NOT NULL,
    role       TEXT NOT NULL,
    name       TEXT NOT NULL,
    hash       TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL
) STRICT;

CREATE TABLE policies (
    tenant_id  TEXT    NOT NULL,
    id         TEXT    NOT NULL,
    name       TEXT    NOT NULL,
    version    INTEGER NOT NULL,
    type       TEXT    NOT NULL,
    threshold  TEXT    NOT NULL,
    action     TEXT    NOT NULL,
    step_types TEXT,             -- JSON array, NULL when none
    expression TEXT    NOT NULL,
    created_at TEXT    NOT NULL,
    PRIMARY KEY (tenant_id, id, version),
    UNIQUE (tenant_id, name, version)
) STRICT;

CREATE TABLE policy_snapshots (
    tenant_id  TEXT NOT NULL,
    id         TEXT NOT NULL,
    policies   TEXT NOT NULL, -- JSON of []runproof.Policy
    created_at TEXT NOT NULL,
    PRIMARY KEY (tenant_id, id)
) STRICT;

CREATE TABLE runs (
    tenant_id          TEXT    NOT NULL,
    id                 TEXT    NOT NULL,
    agent_id           TEXT    NOT NULL,
    goal               TEXT    NOT NULL,
    trace_id           TEXT    NOT NULL,
    status             TEXT    NOT NULL,
    snapshot_id        TEXT    NOT NULL,
    started_at         TEXT    NOT NULL,
    stopped_at         TEXT,
    completed_at       TEXT,
    termination_reason TEXT    NOT NULL,
    incident_id        TEXT    NOT NULL,
    steps              INTEGER NOT NULL,
    input_tokens       INTEGER NOT NULL,
    output_tokens      INTEGER NOT NULL,
    cost_microcents    INTEGER NOT NULL,
    duration_micros    INTEGER NOT NULL,
    created_at         TEXT    NOT NULL,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, snapshot_id) REFERENCES policy_snapshots (tenant_id, id)
) STRICT;
CREATE INDEX runs_started ON runs (tenant_id, started_at DESC, id DESC);
CREATE INDEX runs_agent ON runs (tenant_id, agent_id);
CREATE INDEX runs_trace ON runs (tenant_id, trace_id);

CREATE TABLE steps (
    tenant_id       TEXT    NOT NULL,
    run_id          TEXT    NOT NULL,
    step_index      INTEGER NOT NULL,
    timestamp       TEXT    NOT NULL,
    step_type       TEXT    NOT NULL,
    input_tokens    INTEGER NOT NULL,
    output_tokens   INTEGER NOT NULL,
    cost_microcents INTEGER NOT NULL,
    duration_micros INTEGER NOT NULL,
    content         TEXT,             -- exact bytes, NULL when absent
    content_digest  TEXT    NOT NULL,
    content_hash    TEXT    NOT NULL,
    status          TEXT    NOT NULL,
    is_inflection   INTEGER NOT NULL CHECK (is_inflection IN (0, 1)),
    findings        TEXT,             -- JSON array, NULL when none
    recorded_at     TEXT    NOT NULL,
    PRIMARY KEY (tenant_id, run_id, step_index),
    FOREIGN KEY (tenant_id, run_id) REFERENCES runs (tenant_id, id)
) STRICT;

CREATE TABLE incidents (
    tenant_id             TEXT    NOT NULL,
    id                    TEXT    NOT NULL,
    run_id                TEXT    NOT NULL,
    policy_id             TEXT    NOT NULL,
    policy_version        INTEGER NOT NULL,
    policy_name           TEXT    NOT NULL,
    violation_type        TEXT    NOT NULL,
    threshold_value       TEXT    NOT NULL,
    actual_value          TEXT    NOT NULL,
    inflection_step_index INTEGER NOT NULL,
    violation_at          TEXT    NOT NULL,
    detected_at           TEXT    NOT NULL,
    contained_at          TEXT,
    risk_level            TEXT    NOT NULL,
    remediation_status    TEXT    NOT NULL,
    created_at            TEXT    NOT NULL,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, run_id) REFERENCES runs (tenant_id, id)
) STRICT;
CREATE INDEX incidents_violation ON incidents (tenant_id, violation_at DESC, id DESC);
CREATE INDEX incidents_run ON incidents (tenant_id, run_id);

CREATE TABLE audit_events (
    tenant_id        TEXT    NOT NULL,
    id               TEXT    NOT NULL,
    occurred_at      TEXT    NOT NULL,
    actor            TEXT    NOT NULL,
    actor_type       TEXT    NOT NULL,
    category         TEXT    NOT NULL,
    action           TEXT    NOT NULL,
    resource         TEXT    NOT NULL,
    decision         TEXT    NOT NULL,
    status           INTEGER NOT NULL,
    correlation_id   TEXT    NOT NULL,
    source_component TEXT    NOT NULL,
    detail           TEXT    NOT NULL,
    PRIMARY KEY (tenant_id, id)
) STRICT;
CREATE INDEX audit_occurred ON audit_events (tenant_id, occurred_at DESC, id DESC);
CREATE INDEX audit_category ON audit_events (tenant_id, category, occurred_at DESC);

-- Evidence must not change once written: the database itself refuses.

-- +goose StatementBegin
CREATE TRIGGER policies_no_update BEFORE UPDATE ON policies
BEGIN SELECT RAISE(ABORT, 'policies are append-only'); END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER policies_no_delete BEFORE DELETE ON policies
BEGIN SELECT RAISE(ABORT, 'policies are append-only'); END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER policy_snapshots_no_update BEFORE UPDATE ON policy_snapshots
BEGIN SELECT RAISE(ABORT, 'policy snapshots are append-only'); END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER policy_snapshots_no_delete BEFORE DELETE ON policy_snapshots
BEGIN SELECT RAISE(ABORT, 'policy snapshots are append-only'); END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER steps_no_update BEFORE UPDATE ON steps
BEGIN SELECT RAISE(ABORT, 'steps are append-only'); END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER steps_no_delete BEFORE DELETE ON steps
BEGIN SELECT RAISE(ABORT, 'steps are append-only'); END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
BEGIN SELECT RAISE(ABORT, 'audit events are append-only'); END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
BEGIN SELECT RAISE(ABORT, 'audit events are append-only'); END;
-- +goose StatementEnd

-- +goose Down
DROP TABLE audit_events;
DROP TABLE incidents;
DROP TABLE steps;
DROP TABLE runs;
DROP TABLE policy_snapshots;
DROP TABLE policies;
DROP TABLE api_keys;
