-- Identity alerts (issue 16, item 1) on SQLite. Kept column for column the same as
-- ../postgres/0013_identity_alerts.sql.
--
-- A model that answered unlike its fingerprint: one alert per identity check whose verdict is
-- changed (check_id set: before or after a job, or scheduled), written with the check, for the
-- model's vendor; and one per job whose result attests changed (job_id set), written in the
-- transaction that ends the job, for the vendor and the job's evaluator. The figures are the
-- check's, or the job's as attested: queries, mismatches, the p-value in units of 10^-4, never
-- a probe or an answer. Each party acknowledges its own.
CREATE TABLE identity_alerts (
    id TEXT PRIMARY KEY,
    model_id TEXT NOT NULL REFERENCES models (id),
    vendor_id TEXT NOT NULL REFERENCES accounts (id),
    check_id TEXT UNIQUE REFERENCES identity_checks (id),
    job_id TEXT UNIQUE REFERENCES jobs (id),
    evaluator_id TEXT REFERENCES accounts (id),
    queries INTEGER NOT NULL CHECK (queries >= 0),
    mismatches INTEGER NOT NULL CHECK (mismatches >= 0),
    p_value_e4 INTEGER,
    created_at INTEGER NOT NULL,
    vendor_acknowledged_at INTEGER,
    evaluator_acknowledged_at INTEGER,
    CHECK ((check_id IS NULL) <> (job_id IS NULL)),
    CHECK ((job_id IS NULL) = (evaluator_id IS NULL))
);
CREATE INDEX identity_alerts_by_vendor ON identity_alerts (vendor_id, created_at);
CREATE INDEX identity_alerts_by_evaluator ON identity_alerts (evaluator_id, created_at);
