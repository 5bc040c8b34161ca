-- The server's clock on each job (issue 11) on SQLite. Kept column for column the same as
-- ../postgres/0004_visible_times.sql.
--
-- Every other time in the schema is the database's clock, which leases need (one clock for all
-- servers). These are readings of the server's own, injectable clock, in milliseconds since the
-- Unix epoch: when the job was submitted, first claimed, and the (padded) end its worker waited
-- for. A job whose policy has a time grid shows its evaluator these, on the grid, and never the
-- database's times, so what it sees does not depend on when its samples happened to finish, and
-- tests with a fixed clock see the same times in every run. NULL: written without a reading (a
-- job that ended before it ran, or one from before this migration); the database's time on the
-- grid stands in.
ALTER TABLE jobs ADD COLUMN clock_created_at INTEGER;
ALTER TABLE jobs ADD COLUMN clock_started_at INTEGER;
ALTER TABLE jobs ADD COLUMN clock_finished_at INTEGER;
