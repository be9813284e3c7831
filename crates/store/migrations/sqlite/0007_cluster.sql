-- Leases on CRM writes being delivered and the node table (one node on SQLite; the same
-- shape as PostgreSQL's, so delivery works the same way on both).
ALTER TABLE outbox ADD COLUMN lease_owner TEXT;
ALTER TABLE outbox ADD COLUMN lease_until_ms INTEGER NOT NULL DEFAULT 0;
ALTER TABLE outbox ADD COLUMN fence INTEGER NOT NULL DEFAULT 0;

CREATE TABLE nodes (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    version TEXT NOT NULL,
    started_at TEXT NOT NULL,
    last_seen_ms INTEGER NOT NULL,
    stopped INTEGER NOT NULL DEFAULT 0
);
