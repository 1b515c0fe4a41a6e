-- Where an incident's remediation stands is recorded after it opens
-- (remediation_status) with notes on it.

-- +goose Up
ALTER TABLE incidents ADD COLUMN remediation_notes TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE incidents DROP COLUMN remediation_notes;
