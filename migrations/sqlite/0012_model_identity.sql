-- Model identity canaries (issue 16, item 1) on SQLite. Kept column for column the same as
-- ../postgres/0012_model_identity.sql.
--
-- A model's fingerprint: its probe secret, sealed by the server with the key that seals vendor
-- credentials (the database alone cannot open it), and what registration measured. The probes
-- are candidate indexes with the HMAC of their temperature-0 answers under a key derived from
-- the secret: no probe text and no answer is ever stored; both are regenerated or compared
-- from the secret. state: fingerprinting (claimed by claimed_by since claimed_at, or not yet),
-- ready, unstable (too few stable probes, or serving noise above the test's null rate: never
-- checked) or failed (a query failed; tried again later).
CREATE TABLE model_fingerprints (
    model_id TEXT PRIMARY KEY REFERENCES models (id),
    state TEXT NOT NULL,
    secret BLOB NOT NULL,
    probes TEXT,
    border_found INTEGER,
    null_queries INTEGER,
    null_mismatches INTEGER,
    queries INTEGER NOT NULL DEFAULT 0 CHECK (queries >= 0),
    claimed_by TEXT,
    claimed_at INTEGER,
    created_at INTEGER NOT NULL,
    measured_at INTEGER
);

-- Every identity check: before or after a job (job_id set), or on the schedule. Its figures
-- only: queries sent, answers that differed from the fingerprint, the p-value in units of
-- 10^-4 (on the grid the test rounds up to; null when not checked) and the verdict (same,
-- changed, not_checked). Probe queries are the service's own: no grant pays for them and no
-- evaluator's usage shows them; the vendor reads them here.
CREATE TABLE identity_checks (
    id TEXT PRIMARY KEY,
    model_id TEXT NOT NULL REFERENCES models (id),
    job_id TEXT REFERENCES jobs (id),
    kind TEXT NOT NULL,
    queries INTEGER NOT NULL CHECK (queries >= 0),
    mismatches INTEGER NOT NULL CHECK (mismatches >= 0),
    p_value_e4 INTEGER,
    verdict TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX identity_checks_by_model ON identity_checks (model_id, created_at);
CREATE INDEX identity_checks_by_verdict ON identity_checks (verdict, created_at);
