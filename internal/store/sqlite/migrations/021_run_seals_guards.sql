-- How far a run's steps are sealed only goes up, and is never forgotten:
-- lowered, the sealer would seal steps twice; raised or removed, the
-- steps past it would wait for a seal for ever. As every guard, these
-- stop a mistake or a script; `runproof ledger verify` finds the rest.

-- +goose Up
-- +goose StatementBegin
CREATE TRIGGER run_seals_only_up BEFORE UPDATE ON run_seals
WHEN NEW.tenant_id IS NOT OLD.tenant_id OR NEW.run_id IS NOT OLD.run_id OR NEW.sealed_steps < OLD.sealed_steps
BEGIN SELECT RAISE(ABORT, 'how far a run''s steps are sealed only goes up'); END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER run_seals_no_delete BEFORE DELETE ON run_seals
BEGIN SELECT RAISE(ABORT, 'how far a run''s steps are sealed is never forgotten'); END;
-- +goose StatementEnd

-- +goose Down
DROP TRIGGER run_seals_no_delete;
DROP TRIGGER run_seals_only_up;
