-- Native event formats (api.md "Native event formats"). Every platform event received, once:
-- its (source, native id) is what duplicates are recognized by. `event_ids` lists the
-- casebridge events it became (none for a duplicate step or an event that only waits).
CREATE TABLE native_events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    source TEXT NOT NULL,
    native_id TEXT NOT NULL,
    session_id TEXT NOT NULL,
    type TEXT NOT NULL,
    at TEXT NOT NULL,
    body TEXT NOT NULL,
    event_ids TEXT NOT NULL DEFAULT '[]',
    received_at TEXT NOT NULL,
    UNIQUE (source, native_id)
);
CREATE INDEX native_events_session ON native_events(session_id, seq);

-- What the native events of a session have told so far, and which casebridge events were
-- made from it: later events fill in what earlier ones lacked.
CREATE TABLE native_sessions (
    session_id TEXT PRIMARY KEY,
    snapshot TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

-- The platform event behind an event line of the timeline.
ALTER TABLE timeline ADD COLUMN native TEXT;
