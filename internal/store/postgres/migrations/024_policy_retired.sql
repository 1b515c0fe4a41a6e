-- A policy can be retired: a version marked retired ends it, and a later
-- version of its name makes it active again. Versions stay append-only.
-- Down fails, changing nothing, once a policy is retired: rolling back
-- would make the retiring version an active one.

-- +goose Up
ALTER TABLE policies ADD COLUMN retired boolean NOT NULL DEFAULT false;

-- +goose Down
-- +goose StatementBegin
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM policies WHERE retired) THEN
        RAISE EXCEPTION 'policies have been retired: rolling back would make them active again';
    END IF;
END $$;
-- +goose StatementEnd
ALTER TABLE policies DROP COLUMN retired;
