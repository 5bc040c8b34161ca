-- Fair claiming across evaluators (issue 18) on postgres; the same as ../sqlite/0006_fair_claims.sql.
--
-- A worker takes the next job from the evaluator with the fewest running jobs, and among those
-- from the one it served least recently (the latest first claim of any of its jobs), so one
-- evaluator's long queue cannot hold another's job back past one claim. Each claim reads both
-- for every evaluator with a job waiting: these indexes make each an index range, not a scan
-- of the evaluator's whole history.
CREATE INDEX jobs_started_by_evaluator ON jobs (evaluator_id, started_at);
CREATE INDEX jobs_status_by_evaluator ON jobs (evaluator_id, status);
