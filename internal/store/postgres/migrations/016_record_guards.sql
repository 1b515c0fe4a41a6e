-- The records that are not append-only change only as runproof changes
-- them, and are never deleted or truncated: an API key stays (audit events
-- name it), a run keeps who ran it, under which policies and when, and its
-- totals never go down (its steps are append-only), and an incident
-- changes only where its remediation stands.

-- +goose Up
CREATE TRIGGER api_keys_no_delete BEFORE DELETE ON api_keys
    FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER api_keys_no_truncate BEFORE TRUNCATE ON api_keys
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();
CREATE TRIGGER runs_no_delete BEFORE DELETE ON runs
    FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER runs_no_truncate BEFORE TRUNCATE ON runs
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();
CREATE TRIGGER incidents_no_delete BEFORE DELETE ON incidents
    FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER incidents_no_truncate BEFORE TRUNCATE ON incidents
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();

-- +goose StatementBegin
CREATE FUNCTION runs_change_only_as_run() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF (NEW.tenant_id, NEW.id, NEW.agent_id, NEW.goal, NEW.trace_id, NEW.snapshot_id, NEW.started_at, NEW.created_at)
           IS DISTINCT FROM (OLD.tenant_id, OLD.id, OLD.agent_id, OLD.goal, OLD.trace_id, OLD.snapshot_id, OLD.started_at, OLD.created_at)
        OR NEW.steps < OLD.steps OR NEW.input_tokens < OLD.input_tokens OR NEW.output_tokens < OLD.output_tokens
        OR NEW.cost_microcents < OLD.cost_microcents OR NEW.duration_micros < OLD.duration_micros THEN
        RAISE EXCEPTION 'a run changes only as its steps come: its agent, goal, trace, policies and start stay, its totals never go down';
    END IF;
    RETURN NEW;
END $$;
-- +goose StatementEnd
CREATE TRIGGER runs_change_only_as_run BEFORE UPDATE ON runs
    FOR EACH ROW EXECUTE FUNCTION runs_change_only_as_run();

-- +goose StatementBegin
CREATE FUNCTION incidents_remediation_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF (NEW.tenant_id, NEW.id, NEW.run_id, NEW.policy_id, NEW.policy_version, NEW.policy_name, NEW.violation_type,
        NEW.threshold_value, NEW.actual_value, NEW.inflection_step_index, NEW.violation_at, NEW.detected_at,
        NEW.contained_at, NEW.risk_level, NEW.created_at)
           IS DISTINCT FROM (OLD.tenant_id, OLD.id, OLD.run_id, OLD.policy_id, OLD.policy_version, OLD.policy_name,
        OLD.violation_type, OLD.threshold_value, OLD.actual_value, OLD.inflection_step_index, OLD.violation_at,
        OLD.detected_at, OLD.contained_at, OLD.risk_level, OLD.created_at) THEN
        RAISE EXCEPTION 'an incident changes only where its remediation stands';
    END IF;
    RETURN NEW;
END $$;
-- +goose StatementEnd
CREATE TRIGGER incidents_remediation_only BEFORE UPDATE ON incidents
    FOR EACH ROW EXECUTE FUNCTION incidents_remediation_only();

-- +goose Down
DROP TRIGGER incidents_remediation_only ON incidents;
DROP FUNCTION incidents_remediation_only();
DROP TRIGGER runs_change_only_as_run ON runs;
DROP FUNCTION runs_change_only_as_run();
DROP TRIGGER incidents_no_truncate ON incidents;
DROP TRIGGER incidents_no_delete ON incidents;
DROP TRIGGER runs_no_truncate ON runs;
DROP TRIGGER runs_no_delete ON runs;
DROP TRIGGER api_keys_no_truncate ON api_keys;
DROP TRIGGER api_keys_no_delete ON api_keys;
