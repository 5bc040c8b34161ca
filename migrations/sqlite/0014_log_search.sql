-- The public log page's search (issue 15) on SQLite. Kept the same as ../postgres/0014_log_search.sql.
--
-- Entries are found through their jobs: by eval component, by dataset, by model. Without
-- these, each search would read every job.
CREATE INDEX jobs_by_eval ON jobs (eval_digest);
CREATE INDEX jobs_by_dataset ON jobs (dataset_digest);
CREATE INDEX jobs_by_model ON jobs (model_id);
