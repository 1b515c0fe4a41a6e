-- A policy can be retired: a version marked retired ends it, and a later
-- version of its name makes it active again. Versions stay append-only.
-- Down fails, changing nothing, once a policy is retired: rolling back
-- would make the retiring version an active one.

-- +goose Up
ALTER TABLE policies ADD COLUMN retired INTEGER NOT NULL DEFAULT 0 CHECK (retired IN (0, 1));

-- +goose Down
CREATE TEMP TABLE retired_policies_guard (retired INTEGER CHECK (retired = 0));
INSERT INTO retired_policies_guard SELECT count(*) FROM policies WHERE retired;
DROP TABLE retired_policies_guard;
ALTER TABLE policies DROP COLUMN retired;
