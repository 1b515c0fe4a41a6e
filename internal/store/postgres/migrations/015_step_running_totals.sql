-- Each step keeps the run's totals over its steps up to and including it,
-- so that the running totals at any step are one row's read, not a sum
-- over every step before it (a run's telemetry, a page at a time). Steps
-- are append-only: the trigger is lifted while those stored before are
-- filled in, within this migration's transaction.

-- +goose Up
ALTER TABLE steps ADD COLUMN running_input_tokens bigint NOT NULL DEFAULT 0,
    ADD COLUMN running_output_tokens bigint NOT NULL DEFAULT 0,
    ADD COLUMN running_cost_microcents bigint NOT NULL DEFAULT 0,
    ADD COLUMN running_duration_micros bigint NOT NULL DEFAULT 0;
ALTER TABLE steps DISABLE TRIGGER steps_append_only;
UPDATE steps SET running_input_tokens = r.input_tokens, running_output_tokens = r.output_tokens,
        running_cost_microcents = r.cost_microcents, running_duration_micros = r.duration_micros
    FROM (SELECT tenant_id, run_id, step_index,
                 SUM(input_tokens) OVER w AS input_tokens, SUM(output_tokens) OVER w AS output_tokens,
                 SUM(cost_microcents) OVER w AS cost_microcents, SUM(duration_micros) OVER w AS duration_micros
            FROM steps
          WINDOW w AS (PARTITION BY tenant_id, run_id ORDER BY step_index)) AS r
    WHERE steps.tenant_id = r.tenant_id AND steps.run_id = r.run_id AND steps.step_index = r.step_index;
ALTER TABLE steps ENABLE TRIGGER steps_append_only;
-- A runproof of an older schema still running (one server of several
-- being upgraded) writes no running totals: they are worked out from the
-- step before, rather than left at zero.
ALTER TABLE steps ALTER COLUMN running_input_tokens DROP DEFAULT,
    ALTER COLUMN running_output_tokens DROP DEFAULT,
    ALTER COLUMN running_cost_microcents DROP DEFAULT,
    ALTER COLUMN running_duration_micros DROP DEFAULT;
-- +goose StatementBegin
CREATE FUNCTION fill_running_totals() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.running_input_tokens IS NULL OR NEW.running_output_tokens IS NULL
        OR NEW.running_cost_microcents IS NULL OR NEW.running_duration_micros IS NULL THEN
        SELECT coalesce(max(p.running_input_tokens), 0) + NEW.input_tokens,
               coalesce(max(p.running_output_tokens), 0) + NEW.output_tokens,
               coalesce(max(p.running_cost_microcents), 0) + NEW.cost_microcents,
               coalesce(max(p.running_duration_micros), 0) + NEW.duration_micros
          INTO NEW.running_input_tokens, NEW.running_output_tokens, NEW.running_cost_microcents, NEW.running_duration_micros
          FROM steps p
         WHERE p.tenant_id = NEW.tenant_id AND p.run_id = NEW.run_id AND p.step_index = NEW.step_index - 1;
    END IF;
    RETURN NEW;
END
$$;
-- +goose StatementEnd
CREATE TRIGGER steps_running_totals BEFORE INSERT ON steps
    FOR EACH ROW WHEN (NEW.running_input_tokens IS NULL OR NEW.running_output_tokens IS NULL
        OR NEW.running_cost_microcents IS NULL OR NEW.running_duration_micros IS NULL)
    EXECUTE FUNCTION fill_running_totals();

-- +goose Down
DROP TRIGGER steps_running_totals ON steps;
DROP FUNCTION fill_running_totals();
ALTER TABLE steps DROP COLUMN running_input_tokens, DROP COLUMN running_output_tokens,
    DROP COLUMN running_cost_microcents, DROP COLUMN running_duration_micros;
