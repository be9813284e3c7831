-- The operators' session list (GET /v1/sessions): filters on phase, record outcome, phone
-- and start, newest first. A session waiting for its session.created has no created_at, so
-- `first_at` keeps the time of its first event and `started_at` falls back to it.
ALTER TABLE sessions ADD COLUMN first_at TEXT;
UPDATE sessions SET first_at = (SELECT MIN(at) FROM events WHERE events.session_id = sessions.id);
ALTER TABLE sessions ADD COLUMN started_at TEXT
    GENERATED ALWAYS AS (COALESCE(created_at, first_at, updated_at)) VIRTUAL;
ALTER TABLE sessions ADD COLUMN phase TEXT
    GENERATED ALWAYS AS (CASE WHEN json_valid(body) THEN json_extract(body, '$.phase') END) VIRTUAL;
ALTER TABLE sessions ADD COLUMN record_outcome TEXT
    GENERATED ALWAYS AS (CASE WHEN json_valid(body) THEN json_extract(body, '$.record_outcome') END) VIRTUAL;
ALTER TABLE sessions ADD COLUMN phone TEXT
    GENERATED ALWAYS AS (CASE WHEN json_valid(body) THEN json_extract(body, '$.phone.number') END) VIRTUAL;
CREATE INDEX sessions_started ON sessions(started_at DESC, id DESC);
CREATE INDEX sessions_phase ON sessions(phase, started_at DESC, id DESC);
CREATE INDEX sessions_phone ON sessions(phone);
