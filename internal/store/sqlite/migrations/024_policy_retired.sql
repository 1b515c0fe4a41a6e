-- A policy can be retired: a version marked retired ends it, and a later
-- version of its name makes it active again. Versions stay append-only.

-- +goose Up
ALTER TABLE policies ADD COLUMN retired INTEGER NOT NULL DEFAULT 0 CHECK (retired IN (0, 1));

-- +goose Down
ALTER TABLE policies DROP COLUMN retired;
