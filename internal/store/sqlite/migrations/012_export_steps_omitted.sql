-- A completed export records how many of its run's steps its bundle
-- leaves out (include_raw_steps false): a SOC 2 sign-off is made on a
-- bundle that holds them all and carries over only to bundles that do,
-- since the controls depend on it. NULL for other events and for exports
-- completed before.

-- +goose Up
ALTER TABLE export_events ADD COLUMN steps_omitted INTEGER CHECK (steps_omitted >= 0);

-- +goose Down
ALTER TABLE export_events DROP COLUMN steps_omitted;
