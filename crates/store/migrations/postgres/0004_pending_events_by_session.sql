-- As SQLite's 0012: a session's waiting events through an index of the waiting ones; the
-- first event's time comes with the rules step. The full index took a write per event.
DROP INDEX events_session;
CREATE INDEX events_pending_session ON events(session_id) WHERE NOT applied;
