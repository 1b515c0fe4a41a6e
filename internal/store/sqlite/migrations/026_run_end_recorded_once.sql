-- When runproof recorded a run's end is written with the end, once, and
-- never without it: it sets how long the run takes late steps.

-- +goose Up
DROP TRIGGER runs_change_only_as_run;
-- +goose StatementBegin
CREATE TRIGGER runs_change_only_as_run BEFORE UPDATE ON runs
WHEN NEW.tenant_id IS NOT OLD.tenant_id OR NEW.id IS NOT OLD.id OR NEW.agent_id IS NOT OLD.agent_id
    OR NEW.goal IS NOT OLD.goal OR NEW.trace_id IS NOT OLD.trace_id OR NEW.snapshot_id IS NOT OLD.snapshot_id
    OR NEW.started_at IS NOT OLD.started_at OR NEW.created_at IS NOT OLD.created_at
    OR NEW.steps < OLD.steps OR NEW.input_tokens < OLD.input_tokens OR NEW.output_tokens < OLD.output_tokens
    OR NEW.cost_microcents < OLD.cost_microcents OR NEW.duration_micros < OLD.duration_micros
    OR OLD.status <> 'running' AND NEW.status IS NOT OLD.status
    OR OLD.stopped_at IS NOT NULL AND NEW.stopped_at IS NOT OLD.stopped_at
    OR OLD.completed_at IS NOT NULL AND NEW.completed_at IS NOT OLD.completed_at
    OR OLD.completed_at IS NOT NULL AND NEW.ended_recorded_at IS NOT OLD.ended_recorded_at
    OR NEW.completed_at IS NULL AND NEW.ended_recorded_at IS NOT NULL
    OR OLD.incident_id <> '' AND NEW.incident_id IS NOT OLD.incident_id
    OR OLD.termination_reason <> '' AND NEW.termination_reason IS NOT OLD.termination_reason
    OR OLD.ended_as <> '' AND NEW.ended_as IS NOT OLD.ended_as
BEGIN SELECT RAISE(ABORT, 'a run changes only as its steps come: its agent, goal, trace, policies and start stay, its totals never go down, its stop and end are written once'); END;
-- +goose StatementEnd

-- +goose Down
DROP TRIGGER runs_change_only_as_run;
-- +goose StatementBegin
CREATE TRIGGER runs_change_only_as_run BEFORE UPDATE ON runs
WHEN NEW.tenant_id IS NOT OLD.tenant_id OR NEW.id IS NOT OLD.id OR NEW.agent_id IS NOT OLD.agent_id
    OR NEW.goal IS NOT OLD.goal OR NEW.trace_id IS NOT OLD.trace_id OR NEW.snapshot_id IS NOT OLD.snapshot_id
    OR NEW.started_at IS NOT OLD.started_at OR NEW.created_at IS NOT OLD.created_at
    OR NEW.steps < OLD.steps OR NEW.input_tokens < OLD.input_tokens OR NEW.output_tokens < OLD.output_tokens
    OR NEW.cost_microcents < OLD.cost_microcents OR NEW.duration_micros < OLD.duration_micros
    OR OLD.status <> 'running' AND NEW.status IS NOT OLD.status
    OR OLD.stopped_at IS NOT NULL AND NEW.stopped_at IS NOT OLD.stopped_at
    OR OLD.completed_at IS NOT NULL AND NEW.completed_at IS NOT OLD.completed_at
    OR OLD.incident_id <> '' AND NEW.incident_id IS NOT OLD.incident_id
    OR OLD.termination_reason <> '' AND NEW.termination_reason IS NOT OLD.termination_reason
    OR OLD.ended_as <> '' AND NEW.ended_as IS NOT OLD.ended_as
BEGIN SELECT RAISE(ABORT, 'a run changes only as its steps come: its agent, goal, trace, policies and start stay, its totals never go down, its stop and end are written once'); END;
-- +goose StatementEnd
