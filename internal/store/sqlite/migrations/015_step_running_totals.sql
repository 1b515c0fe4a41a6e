-- Each step keeps the run's totals over its steps up to and including it,
-- so that the running totals at any step are one row's read, not a sum
-- over every step before it (a run's telemetry, a page at a time). Steps
-- are append-only: the trigger is lifted while those stored before are
-- filled in, within this migration's transaction.

-- +goose Up
ALTER TABLE steps ADD COLUMN running_input_tokens INTEGER NOT NULL DEFAULT 0;
ALTER TABLE steps ADD COLUMN running_output_tokens INTEGER NOT NULL DEFAULT 0;
ALTER TABLE steps ADD COLUMN running_cost_microcents INTEGER NOT NULL DEFAULT 0;
ALTER TABLE steps ADD COLUMN running_duration_micros INTEGER NOT NULL DEFAULT 0;
DROP TRIGGER steps_no_update;
UPDATE steps SET running_input_tokens = r.input_tokens, running_output_tokens = r.output_tokens,
        running_cost_microcents = r.cost_microcents, running_duration_micros = r.duration_micros
    FROM (SELECT tenant_id, run_id, step_index,
                 SUM(input_tokens) OVER w AS input_tokens, SUM(output_tokens) OVER w AS output_tokens,
                 SUM(cost_microcents) OVER w AS cost_microcents, SUM(duration_micros) OVER w AS duration_micros
            FROM steps
          WINDOW w AS (PARTITION BY tenant_id, run_id ORDER BY step_index)) AS r
    WHERE steps.tenant_id = r.tenant_id AND steps.run_id = r.run_id AND steps.step_index = r.step_index;
-- +goose StatementBegin
CREATE TRIGGER steps_no_update BEFORE UPDATE ON steps
BEGIN SELECT RAISE(ABORT, 'steps are append-only'); END;
-- +goose StatementEnd
-- A runproof of an older schema still running writes no running totals:
-- the columns' default, zeros. A step whose running totals are all zero
-- while it or the step before it counts something is refused. (Checking
-- every step against the one before costs a third of the insert rate.)
-- +goose StatementBegin
CREATE TRIGGER steps_running_totals BEFORE INSERT ON steps
WHEN NEW.running_input_tokens = 0 AND NEW.running_output_tokens = 0
     AND NEW.running_cost_microcents = 0 AND NEW.running_duration_micros = 0
     AND (NEW.input_tokens > 0 OR NEW.output_tokens > 0 OR NEW.cost_microcents > 0 OR NEW.duration_micros > 0
          OR EXISTS (SELECT 1 FROM steps p
                      WHERE p.tenant_id = NEW.tenant_id AND p.run_id = NEW.run_id AND p.step_index = NEW.step_index - 1
                        AND (p.running_input_tokens > 0 OR p.running_output_tokens > 0
                             OR p.running_cost_microcents > 0 OR p.running_duration_micros > 0)))
BEGIN SELECT RAISE(ABORT, 'a step without running totals: is a runproof older than schema 15 writing? Stop it'); END;
-- +goose StatementEnd

-- +goose Down
DROP TRIGGER steps_running_totals;
ALTER TABLE steps DROP COLUMN running_input_tokens;
ALTER TABLE steps DROP COLUMN running_output_tokens;
ALTER TABLE steps DROP COLUMN running_cost_microcents;
ALTER TABLE steps DROP COLUMN running_duration_micros;
