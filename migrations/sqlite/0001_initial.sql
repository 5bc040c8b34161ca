-- Proctor's schema on SQLite. Kept column for column the same as ../postgres/0001_initial.sql:
-- ids are uuid text, digests lowercase hex, times integer milliseconds since the Unix epoch
-- (read from the database's clock, so leases do not depend on the servers' clocks), JSON text.

CREATE TABLE accounts (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    role TEXT NOT NULL CHECK (role IN ('admin', 'vendor', 'evaluator', 'regulator')),
    -- Only evaluators have a tier.
    tier TEXT CHECK (tier IN ('academic', 'auditor', 'regulator', 'commercial')),
    created_at INTEGER NOT NULL,
    CHECK (tier IS NULL OR role = 'evaluator')
);

-- Only the sha256 of a token's secret is stored: a leaked table grants nothing.
CREATE TABLE api_tokens (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts (id),
    secret_sha256 BLOB NOT NULL UNIQUE,
    label TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
);
CREATE INDEX api_tokens_by_account ON api_tokens (account_id);

CREATE TABLE models (
    id TEXT PRIMARY KEY,
    owner_id TEXT NOT NULL REFERENCES accounts (id),
    name TEXT NOT NULL,
    version TEXT NOT NULL,
    adapter TEXT NOT NULL,
    config TEXT NOT NULL,
    -- Sealed by the server; opaque here.
    credential BLOB,
    created_at INTEGER NOT NULL,
    UNIQUE (owner_id, name)
);

-- Content-addressed: one row per distinct component, whoever uploaded it.
CREATE TABLE evals (
    digest TEXT PRIMARY KEY,
    bytes BLOB NOT NULL,
    name TEXT NOT NULL,
    version TEXT NOT NULL,
    metrics TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
-- Who uploaded which eval: an account may use what it uploaded.
CREATE TABLE eval_owners (
    digest TEXT NOT NULL REFERENCES evals (digest),
    account_id TEXT NOT NULL REFERENCES accounts (id),
    created_at INTEGER NOT NULL,
    PRIMARY KEY (digest, account_id)
);
CREATE INDEX eval_owners_by_account ON eval_owners (account_id, created_at);

CREATE TABLE datasets (
    digest TEXT PRIMARY KEY,
    bytes BLOB NOT NULL,
    items INTEGER NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE TABLE dataset_owners (
    digest TEXT NOT NULL REFERENCES datasets (digest),
    account_id TEXT NOT NULL REFERENCES accounts (id),
    created_at INTEGER NOT NULL,
    PRIMARY KEY (digest, account_id)
);
CREATE INDEX dataset_owners_by_account ON dataset_owners (account_id, created_at);

CREATE TABLE jobs (
    id TEXT PRIMARY KEY,
    evaluator_id TEXT NOT NULL REFERENCES accounts (id),
    eval_digest TEXT NOT NULL REFERENCES evals (digest),
    dataset_digest TEXT NOT NULL REFERENCES datasets (digest),
    model_id TEXT NOT NULL REFERENCES models (id),
    policy_name TEXT NOT NULL,
    policy_json TEXT NOT NULL,
    policy_digest TEXT NOT NULL,
    concurrency INTEGER NOT NULL,
    -- The u64 seed's bits, as a signed 64-bit integer.
    seed INTEGER NOT NULL,
    status TEXT NOT NULL
        CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled', 'revoked')),
    reason TEXT,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    progress_done INTEGER NOT NULL DEFAULT 0,
    progress_total INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    lease_owner TEXT,
    lease_expires_at INTEGER,
    report TEXT,
    created_at INTEGER NOT NULL,
    started_at INTEGER,
    finished_at INTEGER
);
-- What claim scans: unfinished jobs, oldest first.
CREATE INDEX jobs_unfinished ON jobs (created_at, id) WHERE status IN ('queued', 'running');
CREATE INDEX jobs_by_evaluator ON jobs (evaluator_id, created_at);

-- What the model endpoint billed for the job's latest attempt.
CREATE TABLE job_usage (
    job_id TEXT PRIMARY KEY REFERENCES jobs (id),
    queries INTEGER NOT NULL,
    input_tokens INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL
);

-- The transparency log. One head row; appends lock it (SQLite: every write transaction is
-- BEGIN IMMEDIATE), so appends are serialized and the log cannot fork.
CREATE TABLE log_head (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    size INTEGER NOT NULL,
    root BLOB NOT NULL
);
-- The empty tree's root: sha256 of nothing (RFC 9162).
INSERT INTO log_head (id, size, root)
VALUES (1, 0, X'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');

-- Hashes of complete perfect subtrees (level 0: leaves), written once, never changed.
CREATE TABLE log_nodes (
    level INTEGER NOT NULL,
    idx INTEGER NOT NULL,
    hash BLOB NOT NULL,
    PRIMARY KEY (level, idx)
);

-- The entries: DSSE envelopes, byte for byte the leaves.
CREATE TABLE log_entries (
    log_index INTEGER PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('accepted', 'result')),
    job_id TEXT NOT NULL REFERENCES jobs (id),
    envelope BLOB NOT NULL,
    created_at INTEGER NOT NULL
);
-- At most one pre-registration and one result per job, whatever the code above does.
CREATE UNIQUE INDEX log_entries_one_per_kind ON log_entries (job_id, kind);
