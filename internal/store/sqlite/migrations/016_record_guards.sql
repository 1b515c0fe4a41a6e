-- The records that are not append-only change only as runproof changes
-- them, and are never deleted: an API key stays (audit events name it), a
-- run keeps who ran it, under which policies and when, and its totals
-- never go down (its steps are append-only), and an incident changes only
-- where its remediation stands.

-- +goose Up
-- +goose StatementBegin
CREATE TRIGGER api_keys_no_delete BEFORE DELETE ON api_keys
BEGIN SELECT RAISE(ABORT, 'API keys are never deleted: revoke one instead'); END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER runs_no_delete BEFORE DELETE ON runs
BEGIN SELECT RAISE(ABORT, 'runs are never deleted'); END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER runs_change_only_as_run BEFORE UPDATE ON runs
WHEN NEW.tenant_id IS NOT OLD.tenant_id OR NEW.id IS NOT OLD.id OR NEW.agent_id IS NOT OLD.agent_id
    OR NEW.goal IS NOT OLD.goal OR NEW.trace_id IS NOT OLD.trace_id OR NEW.snapshot_id IS NOT OLD.snapshot_id
    OR NEW.started_at IS NOT OLD.started_at OR NEW.created_at IS NOT OLD.created_at
    OR NEW.steps < OLD.steps OR NEW.input_tokens < OLD.input_tokens OR NEW.output_tokens < OLD.output_tokens
    OR NEW.cost_microcents < OLD.cost_microcents OR NEW.duration_micros < OLD.duration_micros
BEGIN SELECT RAISE(ABORT, 'a run changes only as its steps come: its agent, goal, trace, policies and start stay, its totals never go down'); END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER incidents_no_delete BEFORE DELETE ON incidents
BEGIN SELECT RAISE(ABORT, 'incidents are never deleted'); END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER incidents_remediation_only BEFORE UPDATE ON incidents
WHEN NEW.tenant_id IS NOT OLD.tenant_id OR NEW.id IS NOT OLD.id OR NEW.run_id IS NOT OLD.run_id
    OR NEW.policy_id IS NOT OLD.policy_id OR NEW.policy_version IS NOT OLD.policy_version
    OR NEW.policy_name IS NOT OLD.policy_name OR NEW.violation_type IS NOT OLD.violation_type
    OR NEW.threshold_value IS NOT OLD.threshold_value OR NEW.actual_value IS NOT OLD.actual_value
    OR NEW.inflection_step_index IS NOT OLD.inflection_step_index OR NEW.violation_at IS NOT OLD.violation_at
    OR NEW.detected_at IS NOT OLD.detected_at OR NEW.contained_at IS NOT OLD.contained_at
    OR NEW.risk_level IS NOT OLD.risk_level OR NEW.created_at IS NOT OLD.created_at
BEGIN SELECT RAISE(ABORT, 'an incident changes only where its remediation stands'); END;
-- +goose StatementEnd

-- +goose Down
DROP TRIGGER incidents_remediation_only;
DROP TRIGGER incidents_no_delete;
DROP TRIGGER runs_change_only_as_run;
DROP TRIGGER runs_no_delete;
DROP TRIGGER api_keys_no_delete;
