-- Grants, budgets, metering and the epsilon ledger (issue 5) on SQLite. Kept column for column
-- the same as ../postgres/0002_grants.sql. Counts are integers; epsilon is counted in millionths
-- (integers), so a ledger of many small spends sums exactly and never drifts past its total.

-- A vendor's permission for evaluators to run jobs on one of its models. The grantee is either
-- a tier (never commercial: commercial evaluators get access only when a grant names them) or
-- one evaluator account. A NULL budget is unlimited. The *_used / *_reserved totals are changed
-- only while the grant row is locked (SQLite: the immediate write transaction), which is what
-- keeps reservations from overspending.
CREATE TABLE grants (
    id TEXT PRIMARY KEY,
    vendor_id TEXT NOT NULL REFERENCES accounts (id),
    model_id TEXT NOT NULL REFERENCES models (id),
    grantee_tier TEXT CHECK (grantee_tier IN ('academic', 'auditor', 'regulator')),
    grantee_account_id TEXT REFERENCES accounts (id),
    policy_name TEXT NOT NULL,
    -- JSON object; checked against the named policy ("never loosened") by the server.
    policy_overrides TEXT NOT NULL,
    jobs_per_day INTEGER CHECK (jobs_per_day >= 0),
    queries_per_day INTEGER CHECK (queries_per_day >= 0),
    tokens_per_day INTEGER CHECK (tokens_per_day >= 0),
    queries_total INTEGER CHECK (queries_total >= 0),
    tokens_total INTEGER CHECK (tokens_total >= 0),
    epsilon_total_micro INTEGER CHECK (epsilon_total_micro >= 0),
    approval TEXT NOT NULL CHECK (approval IN ('auto', 'manual')),
    expires_at INTEGER,
    revoked_at INTEGER,
    created_at INTEGER NOT NULL,
    queries_used INTEGER NOT NULL DEFAULT 0,
    tokens_used INTEGER NOT NULL DEFAULT 0,
    queries_reserved INTEGER NOT NULL DEFAULT 0,
    tokens_reserved INTEGER NOT NULL DEFAULT 0,
    epsilon_spent_micro INTEGER NOT NULL DEFAULT 0,
    -- Exactly one kind of grantee.
    CHECK ((grantee_tier IS NULL) <> (grantee_account_id IS NULL))
);
CREATE INDEX grants_by_model ON grants (model_id);
CREATE INDEX grants_by_vendor ON grants (vendor_id, created_at);
CREATE INDEX grants_by_account ON grants (grantee_account_id);

-- Per grant and UTC day (database clock, ms / 86400000): what counts against the daily budgets.
CREATE TABLE grant_days (
    grant_id TEXT NOT NULL REFERENCES grants (id),
    day INTEGER NOT NULL,
    jobs INTEGER NOT NULL DEFAULT 0,
    queries_used INTEGER NOT NULL DEFAULT 0,
    tokens_used INTEGER NOT NULL DEFAULT 0,
    queries_reserved INTEGER NOT NULL DEFAULT 0,
    tokens_reserved INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (grant_id, day)
);

-- Which grant a job runs under, and whether the vendor let it run. A job under a manual grant
-- stays 'queued' with approval 'pending' until the vendor decides; claims skip it.
-- A DP job holds its worst case (queries, tokens) from the grant's budgets from acceptance on
-- (counted in the grant's and hold_day's *_reserved), so no sample's budget depends on another
-- sample's outputs; its queries draw from the hold, and what is left goes back when it ends.
CREATE TABLE job_grants (
    job_id TEXT PRIMARY KEY REFERENCES jobs (id),
    grant_id TEXT NOT NULL REFERENCES grants (id),
    approval TEXT NOT NULL CHECK (approval IN ('auto', 'pending', 'approved', 'rejected')),
    decided_at INTEGER,
    hold_queries INTEGER NOT NULL DEFAULT 0 CHECK (hold_queries >= 0),
    hold_tokens INTEGER NOT NULL DEFAULT 0 CHECK (hold_tokens >= 0),
    hold_day INTEGER,
    hold_released_at INTEGER,
    created_at INTEGER NOT NULL
);
CREATE INDEX job_grants_by_grant ON job_grants (grant_id);

-- The epsilon each DP job spent from its grant, when it was accepted. The sum per grant equals
-- grants.epsilon_spent_micro.
CREATE TABLE epsilon_ledger (
    job_id TEXT PRIMARY KEY REFERENCES jobs (id),
    grant_id TEXT NOT NULL REFERENCES grants (id),
    epsilon_micro INTEGER NOT NULL CHECK (epsilon_micro > 0),
    created_at INTEGER NOT NULL
);
CREATE INDEX epsilon_ledger_by_grant ON epsilon_ledger (grant_id);

-- One model query: reserved (1 query, a worst-case token count) before the request goes out,
-- then settled with the tokens the model reported, or released when the request failed.
CREATE TABLE query_reservations (
    id TEXT PRIMARY KEY,
    grant_id TEXT NOT NULL REFERENCES grants (id),
    job_id TEXT NOT NULL REFERENCES jobs (id),
    day INTEGER NOT NULL,
    tokens_reserved INTEGER NOT NULL CHECK (tokens_reserved >= 0),
    state TEXT NOT NULL CHECK (state IN ('reserved', 'settled', 'released')),
    -- Drawn from the job's hold (job_grants.hold_*) rather than from the grant's free budget.
    from_hold INTEGER NOT NULL DEFAULT 0,
    input_tokens INTEGER,
    output_tokens INTEGER,
    created_at INTEGER NOT NULL,
    ended_at INTEGER
);
CREATE INDEX query_reservations_by_grant ON query_reservations (grant_id);
CREATE INDEX query_reservations_by_job ON query_reservations (job_id);
