-- A run keeps the status its agent ended it as: for a run runproof had
-- stopped, which stays stopped, the agent's word (completed, failed or
-- cancelled) was otherwise lost. '' for a run its agent has not ended, and
-- for a stopped run ended before; other runs ended before ended as their
-- status says.

-- +goose Up
ALTER TABLE runs ADD COLUMN ended_as TEXT NOT NULL DEFAULT ''
    CHECK (ended_as IN ('', 'completed', 'failed', 'cancelled'));
UPDATE runs SET ended_as = status
    WHERE completed_at IS NOT NULL AND status IN ('completed', 'failed', 'cancelled');

-- +goose Down
ALTER TABLE runs DROP COLUMN ended_as;
