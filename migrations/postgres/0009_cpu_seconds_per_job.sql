-- CPU seconds per job as a grant budget (issue 18) on postgres; the same as ../sqlite/0009_cpu_seconds_per_job.sql.
--
-- The most CPU time (whole seconds) the samples of one job under the grant may use, measured by
-- the sandbox around each poll of each sample; a job that passes it is stopped and ends failed
-- with a fixed reason. NULL is unlimited. Grants are never changed once made, so a job's worker
-- reads the same budget its job was accepted under.
ALTER TABLE grants ADD COLUMN cpu_seconds_per_job BIGINT CHECK (cpu_seconds_per_job > 0);
