-- When runproof recorded a run's end is written with the end, once, and
-- never without it: it sets how long the run takes late steps.

-- +goose Up
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION runs_change_only_as_run() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF (NEW.tenant_id, NEW.id, NEW.agent_id, NEW.goal, NEW.trace_id, NEW.snapshot_id, NEW.started_at, NEW.created_at)
           IS DISTINCT FROM (OLD.tenant_id, OLD.id, OLD.agent_id, OLD.goal, OLD.trace_id, OLD.snapshot_id, OLD.started_at, OLD.created_at)
        OR NEW.steps < OLD.steps OR NEW.input_tokens < OLD.input_tokens OR NEW.output_tokens < OLD.output_tokens
        OR NEW.cost_microcents < OLD.cost_microcents OR NEW.duration_micros < OLD.duration_micros
        OR OLD.status <> 'running' AND NEW.status IS DISTINCT FROM OLD.status
        OR OLD.stopped_at IS NOT NULL AND NEW.stopped_at IS DISTINCT FROM OLD.stopped_at
        OR OLD.completed_at IS NOT NULL AND NEW.completed_at IS DISTINCT FROM OLD.completed_at
        OR OLD.completed_at IS NOT NULL AND NEW.ended_recorded_at IS DISTINCT FROM OLD.ended_recorded_at
        OR NEW.completed_at IS NULL AND NEW.ended_recorded_at IS NOT NULL
        OR OLD.incident_id <> '' AND NEW.incident_id IS DISTINCT FROM OLD.incident_id
        OR OLD.termination_reason <> '' AND NEW.termination_reason IS DISTINCT FROM OLD.termination_reason
        OR OLD.ended_as <> '' AND NEW.ended_as IS DISTINCT FROM OLD.ended_as THEN
        RAISE EXCEPTION 'a run changes only as its steps come: its agent, goal, trace, policies and start stay, its totals never go down, its stop and end are written once';
    END IF;
    RETURN NEW;
END $$;
-- +goose StatementEnd

-- +goose Down
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION runs_change_only_as_run() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF (NEW.tenant_id, NEW.id, NEW.agent_id, NEW.goal, NEW.trace_id, NEW.snapshot_id, NEW.started_at, NEW.created_at)
           IS DISTINCT FROM (OLD.tenant_id, OLD.id, OLD.agent_id, OLD.goal, OLD.trace_id, OLD.snapshot_id, OLD.started_at, OLD.created_at)
        OR NEW.steps < OLD.steps OR NEW.input_tokens < OLD.input_tokens OR NEW.output_tokens < OLD.output_tokens
        OR NEW.cost_microcents < OLD.cost_microcents OR NEW.duration_micros < OLD.duration_micros
        OR OLD.status <> 'running' AND NEW.status IS DISTINCT FROM OLD.status
        OR OLD.stopped_at IS NOT NULL AND NEW.stopped_at IS DISTINCT FROM OLD.stopped_at
        OR OLD.completed_at IS NOT NULL AND NEW.completed_at IS DISTINCT FROM OLD.completed_at
        OR OLD.incident_id <> '' AND NEW.incident_id IS DISTINCT FROM OLD.incident_id
        OR OLD.termination_reason <> '' AND NEW.termination_reason IS DISTINCT FROM OLD.termination_reason
        OR OLD.ended_as <> '' AND NEW.ended_as IS DISTINCT FROM OLD.ended_as THEN
        RAISE EXCEPTION 'a run changes only as its steps come: its agent, goal, trace, policies and start stay, its totals never go down, its stop and end are written once';
    END IF;
    RETURN NEW;
END $$;
-- +goose StatementEnd
