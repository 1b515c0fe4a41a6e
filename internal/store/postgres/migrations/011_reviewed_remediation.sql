-- A completed export records the incident's remediation status its bundle
-- shows, and a review the one of the bundle reviewed: a SOC 2 sign-off
-- carries over to later bundles only while it is the same, since it
-- changes their controls. '' without an incident, and for earlier rows.

-- +goose Up
ALTER TABLE export_events ADD COLUMN remediation text NOT NULL DEFAULT '';
ALTER TABLE export_reviews ADD COLUMN remediation text NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE export_reviews DROP COLUMN remediation;
ALTER TABLE export_events DROP COLUMN remediation;
