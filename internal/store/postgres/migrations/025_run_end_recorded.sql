-- When runproof recorded a run's end, by its own clock: completed_at is the
-- agent's. A run that ended takes late steps for a while after that.

-- +goose Up
ALTER TABLE runs ADD COLUMN ended_recorded_at timestamptz;

-- +goose Down
ALTER TABLE runs DROP COLUMN ended_recorded_at;
