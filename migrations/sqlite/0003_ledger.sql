-- The ledger per (evaluator, model) and the vendor's model-wide caps (issue 11) on SQLite. Kept
-- column for column the same as ../postgres/0003_ledger.sql. Epsilon is counted in millionths
-- and leakage in thousandths of a bit (milli-bits), both integers, so many small spends sum
-- exactly; spends are rounded up and limits down, so the ledger never under-counts.

-- What one evaluator has spent on one model, across every grant that ever covered the pair
-- (an account grant and a tier grant, a grant and its re-grant after a revocation): a new grant
-- does not start a fresh ledger. Job acceptance locks this row (after the grant's, before the
-- model's ledger row), so acceptances of one pair under different grants are serialized.
CREATE TABLE ledgers (
    evaluator_id TEXT NOT NULL REFERENCES accounts (id),
    model_id TEXT NOT NULL REFERENCES models (id),
    epsilon_spent_micro INTEGER NOT NULL DEFAULT 0 CHECK (epsilon_spent_micro >= 0),
    bits_spent_milli INTEGER NOT NULL DEFAULT 0 CHECK (bits_spent_milli >= 0),
    PRIMARY KEY (evaluator_id, model_id)
);
CREATE INDEX ledgers_by_model ON ledgers (model_id);

-- A model's totals across all evaluators, and the caps its vendor may set on them (NULL: no
-- cap). Every acceptance on the model locks this row last among the ledgers.
CREATE TABLE model_ledgers (
    model_id TEXT PRIMARY KEY REFERENCES models (id),
    epsilon_total_micro INTEGER CHECK (epsilon_total_micro >= 0),
    bits_total_milli INTEGER CHECK (bits_total_milli >= 0),
    epsilon_spent_micro INTEGER NOT NULL DEFAULT 0 CHECK (epsilon_spent_micro >= 0),
    bits_spent_milli INTEGER NOT NULL DEFAULT 0 CHECK (bits_spent_milli >= 0),
    caps_set_at INTEGER
);

-- Leakage caps of a grant (NULL: none) and what its jobs spent (the pair ledger is what is
-- checked; this is the grant's own record, for its vendor).
ALTER TABLE grants ADD COLUMN bits_per_job_milli INTEGER CHECK (bits_per_job_milli >= 0);
ALTER TABLE grants ADD COLUMN bits_total_milli INTEGER CHECK (bits_total_milli >= 0);
ALTER TABLE grants ADD COLUMN bits_spent_milli INTEGER NOT NULL DEFAULT 0;

-- Each job's leakage bound as spent, and its worst case as held at acceptance: hold_* shrink
-- as the job's queries draw from the hold, worst_* never change, so a view built on them does
-- not move with what the model answered.
ALTER TABLE job_grants ADD COLUMN bits_milli INTEGER NOT NULL DEFAULT 0 CHECK (bits_milli >= 0);
ALTER TABLE job_grants ADD COLUMN worst_queries INTEGER NOT NULL DEFAULT 0;
ALTER TABLE job_grants ADD COLUMN worst_tokens INTEGER NOT NULL DEFAULT 0;

-- Existing jobs: a hold's worst case is what is left of it plus what its queries drew (as
-- reserved), and the per-grant epsilon spent so far moves into the pair and model ledgers.
UPDATE job_grants SET
    worst_queries = hold_queries + (SELECT COUNT(*) FROM query_reservations r
        WHERE r.job_id = job_grants.job_id AND r.from_hold = 1 AND r.state <> 'released'),
    worst_tokens = hold_tokens + (SELECT COALESCE(SUM(r.tokens_reserved), 0)
        FROM query_reservations r
        WHERE r.job_id = job_grants.job_id AND r.from_hold = 1 AND r.state <> 'released')
    WHERE hold_day IS NOT NULL;
INSERT INTO ledgers (evaluator_id, model_id, epsilon_spent_micro)
    SELECT j.evaluator_id, j.model_id, CAST(SUM(l.epsilon_micro) AS BIGINT)
    FROM epsilon_ledger l JOIN jobs j ON j.id = l.job_id
    GROUP BY j.evaluator_id, j.model_id;
INSERT INTO model_ledgers (model_id, epsilon_spent_micro)
    SELECT model_id, CAST(SUM(epsilon_spent_micro) AS BIGINT) FROM ledgers GROUP BY model_id;
