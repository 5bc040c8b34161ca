-- Usage alerts (issue 16, item 2) on SQLite. Kept column for column the same as
-- ../postgres/0011_usage_alerts.sql.
--
-- A grant may be suspended by a usage alert (when its vendor chose so) and reinstated by its
-- vendor: while suspended it covers nothing, as when revoked, but it can come back.
-- `reinstated_at` keeps a reinstated grant from being suspended again by an alert of the
-- window it was reinstated in.
ALTER TABLE grants ADD COLUMN suspended_at INTEGER;
ALTER TABLE grants ADD COLUMN reinstated_at INTEGER;

-- The vendor's alert settings of a grant; a grant without a row is monitored with the
-- defaults, suspends nothing and calls no webhook. `thresholds` is the JSON of
-- proctor_core::anomaly::Thresholds; `webhook_secret` is sealed with the credential key (hex).
CREATE TABLE alert_settings (
    grant_id TEXT PRIMARY KEY REFERENCES grants (id),
    enabled INTEGER NOT NULL CHECK (enabled IN (0, 1)),
    window_s INTEGER NOT NULL CHECK (window_s >= 1),
    history_windows INTEGER NOT NULL CHECK (history_windows >= 1),
    thresholds TEXT NOT NULL,
    suspend INTEGER NOT NULL CHECK (suspend IN (0, 1)),
    webhook_url TEXT,
    webhook_secret TEXT,
    updated_at INTEGER NOT NULL
);

-- A grant's usage profile, one row per window of `window_s` seconds starting at
-- `window_start` (milliseconds): aggregates of the window's queries and no text of them
-- (proctor_core::usage_profile::WindowProfile): the query count, a prompt-size histogram,
-- the reasoning-eliciting count, a HyperLogLog sketch of keyed prompt hashes (hex) and a
-- Misra-Gries summary of keyed template hashes. Written with the metering batches, under the
-- grant's lock; windows older than the grant's history are deleted.
CREATE TABLE usage_windows (
    grant_id TEXT NOT NULL REFERENCES grants (id),
    window_s INTEGER NOT NULL CHECK (window_s >= 1),
    window_start INTEGER NOT NULL,
    queries INTEGER NOT NULL CHECK (queries >= 0),
    sizes TEXT NOT NULL,
    reasoning INTEGER NOT NULL CHECK (reasoning >= 0),
    prompts TEXT NOT NULL,
    templates TEXT NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (grant_id, window_s, window_start)
);

-- Alerts raised for vendors: at most one per grant, window and kind. `figures` is JSON (the
-- test's figures; never text of a query).
CREATE TABLE alerts (
    id TEXT PRIMARY KEY,
    grant_id TEXT NOT NULL REFERENCES grants (id),
    model_id TEXT NOT NULL REFERENCES models (id),
    vendor_id TEXT NOT NULL REFERENCES accounts (id),
    kind TEXT NOT NULL,
    figures TEXT NOT NULL,
    window_start INTEGER NOT NULL,
    window_end INTEGER NOT NULL,
    suspended INTEGER NOT NULL CHECK (suspended IN (0, 1)),
    created_at INTEGER NOT NULL,
    acknowledged_at INTEGER,
    UNIQUE (grant_id, window_start, kind)
);
CREATE INDEX alerts_of_vendor ON alerts (vendor_id, created_at);

-- The webhook outbox: one row per alert whose grant has a webhook, written in the alert's
-- transaction, so a crash between raising and sending loses nothing. A server claims a due
-- row by moving `next_attempt_at` past its delivery timeout, sends, and marks it delivered,
-- or failed after the last attempt.
CREATE TABLE alert_webhooks (
    alert_id TEXT PRIMARY KEY REFERENCES alerts (id),
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    delivered_at INTEGER,
    failed_at INTEGER,
    last_error TEXT
);
CREATE INDEX alert_webhooks_due ON alert_webhooks (next_attempt_at);
