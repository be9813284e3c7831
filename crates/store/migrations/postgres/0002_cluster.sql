-- Several nodes on one database.

-- The database's clock in milliseconds: every lease is timed by it, so nodes whose clocks
-- drift apart still agree on when a lease has run out.
CREATE FUNCTION cb_now_ms() RETURNS BIGINT AS $$
    SELECT (extract(epoch FROM clock_timestamp()) * 1000)::BIGINT
$$ LANGUAGE sql VOLATILE;

-- Rules work is split by session into 16 shards (casebridge_store::cluster::SHARDS).
ALTER TABLE events ADD COLUMN shard SMALLINT GENERATED ALWAYS AS ((hashtextextended(session_id, 0) & 15)::SMALLINT) STORED;
CREATE INDEX events_pending_shard ON events(shard, seq) WHERE NOT applied;

CREATE TABLE rules_shards (
    shard INTEGER PRIMARY KEY,
    holder TEXT COLLATE "C",
    token BIGINT NOT NULL DEFAULT 0,
    until_ms BIGINT NOT NULL DEFAULT 0
);
INSERT INTO rules_shards (shard) SELECT generate_series(0, 15);

CREATE TABLE nodes (
    id TEXT COLLATE "C" PRIMARY KEY,
    name TEXT NOT NULL,
    version TEXT NOT NULL,
    started_at TEXT COLLATE "C" NOT NULL,
    last_seen_ms BIGINT NOT NULL,
    stopped BOOLEAN NOT NULL DEFAULT FALSE
);

-- A CRM write being delivered is leased to one node; `fence` grows with every claim, so the
-- outcome of an attempt whose lease was taken over is refused.
ALTER TABLE outbox ADD COLUMN lease_owner TEXT COLLATE "C";
ALTER TABLE outbox ADD COLUMN lease_until_ms BIGINT NOT NULL DEFAULT 0;
ALTER TABLE outbox ADD COLUMN fence BIGINT NOT NULL DEFAULT 0;
CREATE INDEX outbox_leased ON outbox(lease_owner) WHERE lease_owner IS NOT NULL;

-- The CRM rate limit, shared: one row per request sent in the last minute, and the hold a
-- CRM asked for (Retry-After).
CREATE TABLE crm_pacing (
    crm TEXT COLLATE "C" NOT NULL,
    at_ms BIGINT NOT NULL
);
CREATE INDEX crm_pacing_at ON crm_pacing(crm, at_ms);
CREATE TABLE crm_holds (
    crm TEXT COLLATE "C" PRIMARY KEY,
    until_ms BIGINT NOT NULL
);
