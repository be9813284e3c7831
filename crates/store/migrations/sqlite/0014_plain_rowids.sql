-- AUTOINCREMENT made every commit that adds an event, a timeline line or an outbox row also
-- rewrite sqlite_sequence's page: one WAL page in seventeen under intake. Rows of these
-- tables are never deleted, so a plain rowid key (the largest so far, plus one) numbers new
-- rows exactly as before. SQLite cannot drop AUTOINCREMENT in place: each table is copied.
CREATE TABLE events_plain (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    session_id TEXT NOT NULL,
    type TEXT NOT NULL,
    at TEXT NOT NULL,
    body TEXT NOT NULL,
    received_at TEXT NOT NULL,
    applied INTEGER NOT NULL DEFAULT 0
);
INSERT INTO events_plain (seq, id, session_id, type, at, body, received_at, applied)
    SELECT seq, id, session_id, type, at, body, received_at, applied FROM events ORDER BY seq;
DROP TABLE events;
ALTER TABLE events_plain RENAME TO events;
CREATE INDEX events_pending ON events(seq) WHERE applied = 0;
CREATE INDEX events_pending_session ON events(session_id) WHERE applied = 0;

CREATE TABLE timeline_plain (
    n INTEGER PRIMARY KEY,
    session_id TEXT NOT NULL,
    at TEXT NOT NULL,
    kind TEXT NOT NULL,
    summary TEXT NOT NULL,
    rule TEXT,
    native TEXT
);
INSERT INTO timeline_plain (n, session_id, at, kind, summary, rule, native)
    SELECT n, session_id, at, kind, summary, rule, native FROM timeline ORDER BY n;
DROP TABLE timeline;
ALTER TABLE timeline_plain RENAME TO timeline;
CREATE INDEX timeline_session ON timeline(session_id, n);

CREATE TABLE outbox_plain (
    id INTEGER PRIMARY KEY,
    key TEXT NOT NULL UNIQUE,
    lane TEXT NOT NULL,
    session_id TEXT NOT NULL,
    op TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    last_error TEXT,
    created_at TEXT NOT NULL,
    done_at TEXT,
    lease_owner TEXT,
    lease_until_ms INTEGER NOT NULL DEFAULT 0,
    fence INTEGER NOT NULL DEFAULT 0
);
-- Copied before the tally's triggers exist again: the tally already counts these rows.
INSERT INTO outbox_plain (id, key, lane, session_id, op, state, attempts, next_attempt_at, last_error,
                          created_at, done_at, lease_owner, lease_until_ms, fence)
    SELECT id, key, lane, session_id, op, state, attempts, next_attempt_at, last_error,
           created_at, done_at, lease_owner, lease_until_ms, fence FROM outbox ORDER BY id;
DROP TABLE outbox;
ALTER TABLE outbox_plain RENAME TO outbox;
CREATE INDEX outbox_pending_due ON outbox(next_attempt_at, id) WHERE state = 'pending';
CREATE INDEX outbox_pending_lane ON outbox(lane, id) WHERE state = 'pending';
CREATE INDEX outbox_leased ON outbox(lease_owner, lease_until_ms) WHERE lease_owner IS NOT NULL;
CREATE INDEX outbox_dead ON outbox(id) WHERE state = 'dead';
CREATE INDEX outbox_session ON outbox(session_id);
CREATE TRIGGER outbox_tally_insert AFTER INSERT ON outbox BEGIN
    INSERT INTO outbox_tally (state, n) VALUES (new.state, 1)
        ON CONFLICT(state) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER outbox_tally_update AFTER UPDATE OF state ON outbox WHEN old.state <> new.state BEGIN
    UPDATE outbox_tally SET n = n - 1 WHERE state = old.state;
    INSERT INTO outbox_tally (state, n) VALUES (new.state, 1)
        ON CONFLICT(state) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER outbox_tally_delete AFTER DELETE ON outbox BEGIN
    UPDATE outbox_tally SET n = n - 1 WHERE state = old.state;
END;

DELETE FROM sqlite_sequence WHERE name IN ('events', 'timeline', 'outbox');
