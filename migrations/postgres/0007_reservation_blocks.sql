-- Reservation blocks (issue 12) on postgres; the same as ../sqlite/0007_reservation_blocks.sql.
--
-- A job leases budget from its grant (or from its hold) in blocks: one transaction under the
-- grant's row lock takes many queries and their worst-case tokens at once, the job's samples
-- draw from the block in memory, and what they used is settled in batches. A block's
-- `leased` counts are in its grant's `*_reserved` totals until they are `done`: settled
-- (moved to `*_used` as the model reported), given back (a failed request, or the rest when
-- the job stops drawing), or, for a block its job left open (a worker that died), counted
-- as used at their worst case once the job has ended: the request may have gone out.
CREATE TABLE reservation_blocks (
    id TEXT PRIMARY KEY,
    grant_id TEXT NOT NULL REFERENCES grants (id),
    job_id TEXT NOT NULL REFERENCES jobs (id),
    -- The UTC day whose counters the block counts on (the hold's day for a block from a hold).
    day BIGINT NOT NULL,
    -- Leased from the job's hold (job_grants.hold_*) rather than from the grant's free budget.
    from_hold BIGINT NOT NULL DEFAULT 0,
    queries_leased BIGINT NOT NULL CHECK (queries_leased >= 0),
    tokens_leased BIGINT NOT NULL CHECK (tokens_leased >= 0),
    queries_done BIGINT NOT NULL DEFAULT 0 CHECK (queries_done >= 0 AND queries_done <= queries_leased),
    tokens_done BIGINT NOT NULL DEFAULT 0 CHECK (tokens_done >= 0 AND tokens_done <= tokens_leased),
    -- What the model reported for the queries settled from the block.
    queries_settled BIGINT NOT NULL DEFAULT 0 CHECK (queries_settled >= 0),
    input_tokens BIGINT NOT NULL DEFAULT 0 CHECK (input_tokens >= 0),
    output_tokens BIGINT NOT NULL DEFAULT 0 CHECK (output_tokens >= 0),
    created_at BIGINT NOT NULL,
    -- Set when the last of it was done.
    closed_at BIGINT
);
CREATE INDEX reservation_blocks_by_job ON reservation_blocks (job_id);
CREATE INDEX reservation_blocks_by_grant ON reservation_blocks (grant_id);

-- Each per-query reservation of before becomes a block of one query.
INSERT INTO reservation_blocks (id, grant_id, job_id, day, from_hold, queries_leased,
    tokens_leased, queries_done, tokens_done, queries_settled, input_tokens, output_tokens,
    created_at, closed_at)
SELECT id, grant_id, job_id, day, from_hold, 1, tokens_reserved,
    CASE WHEN state = 'reserved' THEN 0 ELSE 1 END,
    CASE WHEN state = 'reserved' THEN 0 ELSE tokens_reserved END,
    CASE WHEN state = 'settled' THEN 1 ELSE 0 END,
    COALESCE(input_tokens, 0), COALESCE(output_tokens, 0), created_at, ended_at
FROM query_reservations;

DROP TABLE query_reservations;
