-- A session's events were indexed by session for two reads: the time of its first event
-- (now carried by the rules step) and whether any is still waiting (now this index of the
-- waiting ones). The full index took a write on a random page per event stored.
DROP INDEX events_session;
CREATE INDEX events_pending_session ON events(session_id) WHERE applied = 0;
