-- A policy can be retired: a version marked retired ends it, and a later
-- version of its name makes it active again. Versions stay append-only.

-- +goose Up
ALTER TABLE policies ADD COLUMN retired boolean NOT NULL DEFAULT false;

-- +goose Down
ALTER TABLE policies DROP COLUMN retired;
