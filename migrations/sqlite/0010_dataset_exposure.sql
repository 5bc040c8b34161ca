-- Dataset exposure (issue 16, item 3) on SQLite. Kept column for column the same as
-- ../postgres/0010_dataset_exposure.sql.
--
-- How often each dataset's bytes were handed to jobs on each vendor's models: the jobs
-- accepted over it and the samples they are to dispatch. Counted when a job is accepted, in
-- the transaction that writes its pre-registration, which states the counts before it; so the
-- counts depend on no model output, and a job that later fails or is cancelled still counts.
-- Keyed by the dataset's digest, not its owner: every evaluator who uploaded the same bytes
-- adds to one count.
CREATE TABLE dataset_exposure (
    dataset_digest TEXT NOT NULL REFERENCES datasets (digest),
    vendor_id TEXT NOT NULL REFERENCES accounts (id),
    jobs INTEGER NOT NULL CHECK (jobs >= 0),
    items INTEGER NOT NULL CHECK (items >= 0),
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (dataset_digest, vendor_id)
);

-- The jobs accepted before this migration count as well: every job row was written with its
-- pre-registration, so these are the counts their entries in the log add up to.
INSERT INTO dataset_exposure (dataset_digest, vendor_id, jobs, items, updated_at)
SELECT j.dataset_digest, m.owner_id, COUNT(*), SUM(j.progress_total), MAX(j.created_at)
FROM jobs j JOIN models m ON m.id = j.model_id
GROUP BY j.dataset_digest, m.owner_id;
