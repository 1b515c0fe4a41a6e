-- A completed export records the digest of the incident's remediation
-- notes its bundle shows, and a sign-off those of the bundle it was given
-- on: a later bundle carries the sign-off only with the same notes.

-- +goose Up
ALTER TABLE export_events ADD COLUMN remediation_notes TEXT NOT NULL DEFAULT '';
ALTER TABLE export_reviews ADD COLUMN remediation_notes TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE export_reviews DROP COLUMN remediation_notes;
ALTER TABLE export_events DROP COLUMN remediation_notes;
