-- The row /healthz writes (issue 18) on SQLite. Kept column for column the same as
-- ../postgres/0005_health_probe.sql.
--
-- A read answers even while the database refuses every write (a full disk, a read-only file, a
-- pool of connections wedged inside a transaction), so the health probe rewrites this one row
-- in a write transaction: the service says it is healthy only when a write commits. One row,
-- rewritten in place, so probing never grows the database.
CREATE TABLE health_probe (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    -- The database's clock at the last probe that committed, in milliseconds.
    probed_at INTEGER NOT NULL
);
