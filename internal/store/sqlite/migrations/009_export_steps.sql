-- A completed export records how many steps of its run its bundle was
-- built from: a SOC 2 sign-off covers exactly those steps. NULL for other
-- events and for exports completed before.

-- +goose Up
ALTER TABLE export_events ADD COLUMN steps INTEGER CHECK (steps >= 0);

-- +goose Down
ALTER TABLE export_events DROP COLUMN steps;
