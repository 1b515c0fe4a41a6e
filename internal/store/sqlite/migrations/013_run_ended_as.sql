-- A run keeps the status its agent ended it as: for a run runproof had
-- stopped, which stays stopped, the agent's word (completed, failed or
-- cancelled) was otherwise lost. '' for a run not ended by its agent, and
-- for runs ended before.

-- +goose Up
ALTER TABLE runs ADD COLUMN ended_as TEXT NOT NULL DEFAULT ''
    CHECK (ended_as IN ('', 'completed', 'failed', 'cancelled'));

-- +goose Down
ALTER TABLE runs DROP COLUMN ended_as;
