-- A witness's state (proctor-witness): per log, the latest checkpoint it cosigned, and the
-- log-signed checkpoints it refused because they contradict one it cosigned.

-- One row per log origin: the size and root of the latest cosigned checkpoint, and that
-- checkpoint as the witness serves it to monitors (the log's verified signature lines and the
-- witness's cosignature). Only ever changed by a compare-and-swap on (size, root).
CREATE TABLE logs (
    origin TEXT PRIMARY KEY,
    -- Lowercase hex SHA-256 of the origin: the monitoring path `/<origin hash>/checkpoint`.
    origin_hash TEXT NOT NULL UNIQUE,
    size INTEGER NOT NULL CHECK (size >= 0),
    root BLOB NOT NULL CHECK (length(root) = 32),
    note TEXT NOT NULL,
    -- The cosignature's timestamp (seconds since the Unix epoch).
    cosigned_at INTEGER NOT NULL
);

-- Split-view evidence: a checkpoint whose log signature verified, refused because it
-- contradicts the checkpoint the witness had cosigned (same size, another root; or a
-- consistency proof from the cosigned size that fails). Both notes are kept.
CREATE TABLE evidence (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    origin TEXT NOT NULL,
    reason TEXT NOT NULL CHECK (reason IN ('same-size-other-root', 'inconsistent-proof')),
    -- The checkpoint the witness had cosigned, with its signatures.
    cosigned TEXT NOT NULL,
    -- The refused checkpoint, as sent.
    refused TEXT NOT NULL,
    -- The whole add-checkpoint request body (old size, proof lines, checkpoint).
    request TEXT NOT NULL,
    received_at INTEGER NOT NULL,
    -- A log that retries the same refused checkpoint adds nothing.
    UNIQUE (origin, refused)
);
