-- The first schema of runproof on PostgreSQL. Identifiers and names use the
-- "C" collation so that ordering is by bytes, as on SQLite. JSON is text, not
-- jsonb, so that the stored bytes are the bytes written.

-- +goose Up
CREATE TABLE api_keys (
    id         text COLLATE "C" NOT NULL PRIMARY KEY,
    tenant_id  text COLLATE "C" NOT NULL,
    role       text NOT NULL,
    name       text NOT NULL,
    hash       text NOT NULL UNIQUE,
    created_at timestamptz NOT NULL
);

CREATE TABLE policies (
    tenant_id  text COLLATE "C" NOT NULL,
    id         text COLLATE "C" NOT NULL,
    name       text COLLATE "C" NOT NULL,
    version    integer NOT NULL,
    type       text NOT NULL,
    threshold  text NOT NULL,
    action     text NOT NULL,
    step_types text,             -- JSON array, NULL when none
    expression text NOT NULL,
    created_at timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, id, version),
    UNIQUE (tenant_id, name, version)
);

CREATE TABLE policy_snapshots (
    tenant_id  text COLLATE "C" NOT NULL,
    id         text COLLATE "C" NOT NULL,
    policies   text NOT NULL, -- JSON of []runproof.Policy
    created_at timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, id)
);

CREATE TABLE runs (
    tenant_id          text COLLATE "C" NOT NULL,
    id                 text COLLATE "C" NOT NULL,
    agent_id           text COLLATE "C" NOT NULL,
    goal               text NOT NULL,
    trace_id           text COLLATE "C" NOT NULL,
    status             text NOT NULL,
    snapshot_id        text COLLATE "C" NOT NULL,
    started_at         timestamptz NOT NULL,
    stopped_at         timestamptz,
    completed_at       timestamptz,
    termination_reason text NOT NULL,
    incident_id        text NOT NULL,
    steps              bigint NOT NULL,
    input_tokens       bigint NOT NULL,
    output_tokens      bigint NOT NULL,
    cost_microcents    bigint NOT NULL,
    duration_micros    bigint NOT NULL,
    created_at         timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, snapshot_id) REFERENCES policy_snapshots (tenant_id, id)
);
CREATE INDEX runs_started ON runs (tenant_id, started_at DESC, id DESC);
CREATE INDEX runs_agent ON runs (tenant_id, agent_id);
CREATE INDEX runs_trace ON runs (tenant_id, trace_id);

CREATE TABLE steps (
    tenant_id       text COLLATE "C" NOT NULL,
    run_id          text COLLATE "C" NOT NULL,
    step_index      bigint NOT NULL,
    timestamp       timestamptz NOT NULL,
    step_type       text NOT NULL,
    input_tokens    bigint NOT NULL,
    output_tokens   bigint NOT NULL,
    cost_microcents bigint NOT NULL,
    duration_micros bigint NOT NULL,
    content         text,            -- exact bytes, NULL when absent
    content_digest  text NOT NULL,
    content_hash    text NOT NULL,
    status          text NOT NULL,
    is_inflection   boolean NOT NULL,
    findings        text,            -- JSON array, NULL when none
    recorded_at     timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, run_id, step_index),
    FOREIGN KEY (tenant_id, run_id) REFERENCES runs (tenant_id, id)
);

CREATE TABLE incidents (
    tenant_id             text COLLATE "C" NOT NULL,
    id                    text COLLATE "C" NOT NULL,
    run_id                text COLLATE "C" NOT NULL,
    policy_id             text NOT NULL,
    policy_version        integer NOT NULL,
    policy_name           text NOT NULL,
    violation_type        text NOT NULL,
    threshold_value       text NOT NULL,
    actual_value          text NOT NULL,
    inflection_step_index bigint NOT NULL,
    violation_at          timestamptz NOT NULL,
    detected_at           timestamptz NOT NULL,
    contained_at          timestamptz,
    risk_level            text NOT NULL,
    remediation_status    text NOT NULL,
    created_at            timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, run_id) REFERENCES runs (tenant_id, id)
);
CREATE INDEX incidents_violation ON incidents (tenant_id, violation_at DESC, id DESC);
CREATE INDEX incidents_run ON incidents (tenant_id, run_id);

CREATE TABLE audit_events (
    tenant_id        text COLLATE "C" NOT NULL,
    id               text COLLATE "C" NOT NULL,
    occurred_at      timestamptz NOT NULL,
    actor            text NOT NULL,
    actor_type       text NOT NULL,
    category         text COLLATE "C" NOT NULL,
    action           text NOT NULL,
    resource         text NOT NULL,
    decision         text NOT NULL,
    status           integer NOT NULL,
    correlation_id   text NOT NULL,
    source_component text NOT NULL,
    detail           text NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX audit_occurred ON audit_events (tenant_id, occurred_at DESC, id DESC);
CREATE INDEX audit_category ON audit_events (tenant_id, category, occurred_at DESC);

-- Evidence must not change once written: the database itself refuses
-- UPDATE, DELETE and TRUNCATE.

-- +goose StatementBegin
CREATE FUNCTION refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only', TG_TABLE_NAME;
END;
$$;
-- +goose StatementEnd

CREATE TRIGGER policies_append_only BEFORE UPDATE OR DELETE ON policies
    FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER policies_no_truncate BEFORE TRUNCATE ON policies
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();
CREATE TRIGGER policy_snapshots_append_only BEFORE UPDATE OR DELETE ON policy_snapshots
    FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER policy_snapshots_no_truncate BEFORE TRUNCATE ON policy_snapshots
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();
CREATE TRIGGER steps_append_only BEFORE UPDATE OR DELETE ON steps
    FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER steps_no_truncate BEFORE TRUNCATE ON steps
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();
CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();

-- +goose Down
DROP TABLE audit_events;
DROP TABLE incidents;
DROP TABLE steps;
DROP TABLE runs;
DROP TABLE policy_snapshots;
DROP TABLE policies;
DROP TABLE api_keys;
DROP FUNCTION refuse_change();
