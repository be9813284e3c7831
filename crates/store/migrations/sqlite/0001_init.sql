-- Events as received; `applied` flips once the rules have consumed them.
CREATE TABLE events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    session_id TEXT NOT NULL,
    type TEXT NOT NULL,
    at TEXT NOT NULL,
    body TEXT NOT NULL,
    received_at TEXT NOT NULL,
    applied INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX events_pending ON events(seq) WHERE applied = 0;
CREATE INDEX events_session ON events(session_id, seq);

CREATE TABLE sessions (
    id TEXT PRIMARY KEY,
    body TEXT NOT NULL,
    lane TEXT,
    account_key TEXT,
    account_id TEXT,
    record_key TEXT,
    record_id TEXT,
    created_at TEXT,
    updated_at TEXT NOT NULL
);
CREATE INDEX sessions_account ON sessions(account_id, created_at DESC, id DESC);
CREATE INDEX sessions_account_key ON sessions(account_key);
CREATE INDEX sessions_record_key ON sessions(record_key);

CREATE TABLE timeline (
    n INTEGER PRIMARY KEY AUTOINCREMENT,
    session_id TEXT NOT NULL,
    at TEXT NOT NULL,
    kind TEXT NOT NULL,
    summary TEXT NOT NULL,
    rule TEXT
);
CREATE INDEX timeline_session ON timeline(session_id, n);

-- The transactional outbox: CRM writes, in order per lane (customer key).
CREATE TABLE outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL UNIQUE,
    lane TEXT NOT NULL,
    session_id TEXT NOT NULL,
    op TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    last_error TEXT,
    created_at TEXT NOT NULL,
    done_at TEXT
);
CREATE INDEX outbox_due ON outbox(state, lane, id);
CREATE INDEX outbox_session ON outbox(session_id, state);

-- casebridge key -> CRM id, for objects casebridge created.
CREATE TABLE crm_refs (
    key TEXT PRIMARY KEY,
    crm_id TEXT NOT NULL
);

CREATE TABLE settings (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    doc TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

-- The built-in CRM.
CREATE TABLE crm_accounts (
    id TEXT PRIMARY KEY,
    ext_key TEXT UNIQUE,
    kind TEXT NOT NULL,
    name TEXT,
    phone TEXT,
    phone_key TEXT,
    email TEXT,
    email_key TEXT,
    user_id TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX crm_accounts_phone ON crm_accounts(phone_key);
CREATE INDEX crm_accounts_email ON crm_accounts(email_key);
CREATE INDEX crm_accounts_user ON crm_accounts(user_id);

CREATE TABLE crm_records (
    id TEXT PRIMARY KEY,
    ext_key TEXT UNIQUE,
    account_id TEXT,
    title TEXT NOT NULL,
    status TEXT NOT NULL,
    closed_at TEXT,
    leaf_queue TEXT,
    channel TEXT,
    owner_agent_id TEXT,
    tags TEXT NOT NULL DEFAULT '[]',
    custom_fields TEXT NOT NULL DEFAULT '{}',
    abandoned INTEGER NOT NULL DEFAULT 0,
    missed_reason TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX crm_records_account ON crm_records(account_id, created_at);

CREATE TABLE crm_record_sessions (
    record_id TEXT NOT NULL,
    session_id TEXT NOT NULL,
    added_at TEXT NOT NULL,
    PRIMARY KEY (record_id, session_id)
);
CREATE INDEX crm_record_sessions_session ON crm_record_sessions(session_id);

-- Activities, notes, attachments and session objects are keyed by the writer's key so a
-- replayed write updates instead of duplicating.
CREATE TABLE crm_activities (
    id TEXT PRIMARY KEY,
    ext_key TEXT NOT NULL UNIQUE,
    record_id TEXT,
    account_id TEXT,
    session_id TEXT,
    subject TEXT NOT NULL,
    body TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX crm_activities_record ON crm_activities(record_id);
CREATE INDEX crm_activities_account ON crm_activities(account_id);

CREATE TABLE crm_notes (
    id TEXT PRIMARY KEY,
    ext_key TEXT NOT NULL UNIQUE,
    record_id TEXT NOT NULL,
    body TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX crm_notes_record ON crm_notes(record_id);

CREATE TABLE crm_attachments (
    id TEXT PRIMARY KEY,
    ext_key TEXT NOT NULL UNIQUE,
    record_id TEXT NOT NULL,
    name TEXT NOT NULL,
    url TEXT,
    content TEXT,
    created_at TEXT NOT NULL
);
CREATE INDEX crm_attachments_record ON crm_attachments(record_id);

CREATE TABLE crm_session_objects (
    id TEXT PRIMARY KEY,
    session_id TEXT NOT NULL UNIQUE,
    record_id TEXT,
    account_id TEXT,
    data TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX crm_session_objects_record ON crm_session_objects(record_id);
