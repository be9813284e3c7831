-- The session list's filter columns (phase, record outcome, phone) are written by casebridge
-- with the session instead of generated from its JSON body: every rules step rewrote them, and
-- SQLite parsed the old and the new body several times over to maintain their indexes.
DROP INDEX sessions_phase;
DROP INDEX sessions_phone;
ALTER TABLE sessions DROP COLUMN phase;
ALTER TABLE sessions DROP COLUMN record_outcome;
ALTER TABLE sessions DROP COLUMN phone;
ALTER TABLE sessions ADD COLUMN phase TEXT;
ALTER TABLE sessions ADD COLUMN record_outcome TEXT;
ALTER TABLE sessions ADD COLUMN phone TEXT;
UPDATE sessions SET
    phase = CASE WHEN json_valid(body) THEN json_extract(body, '$.phase') END,
    record_outcome = CASE WHEN json_valid(body) THEN json_extract(body, '$.record_outcome') END,
    phone = CASE WHEN json_valid(body) THEN json_extract(body, '$.phone.number') END;
CREATE INDEX sessions_phase ON sessions(phase, started_at DESC, id DESC);
CREATE INDEX sessions_phone ON sessions(phone);
