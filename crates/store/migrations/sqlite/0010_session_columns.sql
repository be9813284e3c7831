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
CREATE INDEX sessions_phone ON sessions(phone) WHERE phone IS NOT NULL;
-- Sessions without an account, record, phone or agent (waiting for their session.created,
-- chats of unknown visitors) stay out of the indexes that look them up by those: every
-- query on them asks for a value, and each index entry is one more write per rules step.
DROP INDEX sessions_account;
CREATE INDEX sessions_account ON sessions(account_id, created_at DESC, id DESC) WHERE account_id IS NOT NULL;
DROP INDEX sessions_account_key;
CREATE INDEX sessions_account_key ON sessions(account_key) WHERE account_key IS NOT NULL;
DROP INDEX sessions_record_key;
CREATE INDEX sessions_record_key ON sessions(record_key) WHERE record_key IS NOT NULL;
DROP INDEX sessions_agent_active;
CREATE INDEX sessions_agent_active ON sessions(agent_id) WHERE over = 0 AND agent_id IS NOT NULL;
