-- Witnesses' cosignatures of the log's checkpoints (issue 13) on PostgreSQL. Kept column for
-- column the same as ../sqlite/0008_witness_cosignatures.sql.
--
-- A witness is named by its verifier key (`name+keyid+base64(0x04 || key)`), so a witness whose
-- key changes is a new witness: its earlier cosignatures never count for the new key.

-- The size each witness last cosigned, as far as this service knows: the old size of the next
-- add-checkpoint request to it (a 409 from the witness names the right one).
CREATE TABLE witness_sizes (
    witness TEXT PRIMARY KEY,
    tree_size BIGINT NOT NULL CHECK (tree_size >= 0),
    updated_at BIGINT NOT NULL
);

-- One verified cosignature line per witness and tree size. The cosigned checkpoint of a size
-- is the log's checkpoint of that size with these lines appended.
CREATE TABLE log_cosignatures (
    witness TEXT NOT NULL,
    tree_size BIGINT NOT NULL CHECK (tree_size > 0),
    root BYTEA NOT NULL,
    -- The signed-note line, `— <name> <base64(key id || timestamp || signature)>`, no newline.
    line TEXT NOT NULL,
    -- The witness's timestamp in the cosignature (seconds since the Unix epoch).
    cosigned_at BIGINT NOT NULL,
    received_at BIGINT NOT NULL,
    PRIMARY KEY (witness, tree_size)
);
-- The newest sizes first, when the cosigned checkpoint is looked for.
CREATE INDEX log_cosignatures_by_size ON log_cosignatures (tree_size);
