-- Runs ended before schema 13 ended as their status says, but a stopped
-- run, whose agent's word was not kept. Safe to run again.

-- +goose Up
UPDATE runs SET ended_as = status
    WHERE ended_as = '' AND completed_at IS NOT NULL AND status IN ('completed', 'failed', 'cancelled');

-- +goose Down
-- Nothing to undo: ended_as is the status these runs ended with.
SELECT 1;
