-- The whole schema of the SQLite migrations 0001–0006, as one PostgreSQL migration. Times are
-- fixed-width RFC 3339 text (as in SQLite) and text is compared byte by byte (COLLATE "C"), so
-- both backends order and page identically.

-- A member of a JSON text as text, or NULL when the text is not JSON (SQLite's
-- json_valid/json_extract pair).
CREATE FUNCTION cb_json_text(doc TEXT, VARIADIC path TEXT[]) RETURNS TEXT
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    RETURN doc::jsonb #>> path;
EXCEPTION WHEN others THEN
    RETURN NULL;
END;
$$;

-- Events as received; `applied` flips once the rules have consumed them.
CREATE TABLE events (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id TEXT COLLATE "C" NOT NULL UNIQUE,
    session_id TEXT COLLATE "C" NOT NULL,
    type TEXT COLLATE "C" NOT NULL,
    at TEXT COLLATE "C" NOT NULL,
    body TEXT NOT NULL,
    received_at TEXT COLLATE "C" NOT NULL,
    applied BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX events_pending ON events(seq) WHERE NOT applied;
CREATE INDEX events_session ON events(session_id, seq);
CREATE INDEX events_received ON events(received_at);

CREATE TABLE sessions (
    id TEXT COLLATE "C" PRIMARY KEY,
    body TEXT NOT NULL,
    lane TEXT COLLATE "C",
    account_key TEXT COLLATE "C",
    account_id TEXT COLLATE "C",
    record_key TEXT COLLATE "C",
    record_id TEXT COLLATE "C",
    created_at TEXT COLLATE "C",
    updated_at TEXT COLLATE "C" NOT NULL,
    agent_id TEXT COLLATE "C",
    over BOOLEAN NOT NULL DEFAULT FALSE,
    -- A session waiting for its session.created has no created_at: `first_at` keeps the time
    -- of its first event and `started_at` falls back to it.
    first_at TEXT COLLATE "C",
    started_at TEXT COLLATE "C" GENERATED ALWAYS AS (COALESCE(created_at, first_at, updated_at)) STORED,
    phase TEXT COLLATE "C" GENERATED ALWAYS AS (cb_json_text(body, 'phase')) STORED,
    record_outcome TEXT COLLATE "C" GENERATED ALWAYS AS (cb_json_text(body, 'record_outcome')) STORED,
    phone TEXT COLLATE "C" GENERATED ALWAYS AS (cb_json_text(body, 'phone', 'number')) STORED
);
CREATE INDEX sessions_account ON sessions(account_id, created_at DESC, id DESC);
CREATE INDEX sessions_account_key ON sessions(account_key);
CREATE INDEX sessions_record_key ON sessions(record_key);
CREATE INDEX sessions_agent_active ON sessions(agent_id) WHERE NOT over;
CREATE INDEX sessions_started ON sessions(started_at DESC, id DESC);
CREATE INDEX sessions_phase ON sessions(phase, started_at DESC, id DESC);
CREATE INDEX sessions_phone ON sessions(phone);

CREATE TABLE timeline (
    n BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    session_id TEXT COLLATE "C" NOT NULL,
    at TEXT COLLATE "C" NOT NULL,
    kind TEXT COLLATE "C" NOT NULL,
    summary TEXT NOT NULL,
    rule TEXT,
    -- The platform event behind an event line.
    native TEXT
);
CREATE INDEX timeline_session ON timeline(session_id, n);

-- The transactional outbox: CRM writes, in order per lane (customer key).
CREATE TABLE outbox (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    key TEXT COLLATE "C" NOT NULL UNIQUE,
    lane TEXT COLLATE "C" NOT NULL,
    session_id TEXT COLLATE "C" NOT NULL,
    op TEXT NOT NULL,
    state TEXT COLLATE "C" NOT NULL DEFAULT 'pending',
    attempts BIGINT NOT NULL DEFAULT 0,
    next_attempt_at TEXT COLLATE "C" NOT NULL,
    last_error TEXT,
    created_at TEXT COLLATE "C" NOT NULL,
    done_at TEXT COLLATE "C"
);
CREATE INDEX outbox_due ON outbox(state, lane, id);
CREATE INDEX outbox_session ON outbox(session_id, state);

-- Every customer key a CRM write concerns (app user id, phone, email, account), so a lookup
-- for any of them waits until the writes that concern it are delivered.
CREATE TABLE outbox_keys (
    key TEXT COLLATE "C" NOT NULL,
    outbox_id BIGINT NOT NULL,
    PRIMARY KEY (key, outbox_id)
);

-- casebridge key -> CRM id, for objects casebridge created.
CREATE TABLE crm_refs (
    key TEXT COLLATE "C" PRIMARY KEY,
    crm_id TEXT COLLATE "C" NOT NULL
);

CREATE TABLE settings (
    id BIGINT PRIMARY KEY CHECK (id = 1),
    doc TEXT NOT NULL,
    updated_at TEXT COLLATE "C" NOT NULL
);

-- Every change of the settings document through the API, with the whole document after it.
CREATE TABLE settings_history (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at TEXT COLLATE "C" NOT NULL,
    source TEXT COLLATE "C" NOT NULL,
    changed TEXT NOT NULL DEFAULT '[]',
    restored_from BIGINT,
    doc TEXT NOT NULL
);

-- The built-in CRM. Ids are a prefix and a number from the table's sequence.
CREATE SEQUENCE crm_accounts_n;
CREATE SEQUENCE crm_records_n;
CREATE SEQUENCE crm_notes_n;
CREATE SEQUENCE crm_attachments_n;
CREATE SEQUENCE crm_activities_n;
CREATE SEQUENCE crm_session_objects_n;
CREATE SEQUENCE platform_activities_n;

CREATE TABLE crm_accounts (
    id TEXT COLLATE "C" PRIMARY KEY,
    ext_key TEXT COLLATE "C" UNIQUE,
    kind TEXT COLLATE "C" NOT NULL,
    name TEXT,
    phone TEXT COLLATE "C",
    phone_key TEXT COLLATE "C",
    email TEXT,
    email_key TEXT COLLATE "C",
    user_id TEXT COLLATE "C",
    custom_fields TEXT NOT NULL DEFAULT '{}',
    created_at TEXT COLLATE "C" NOT NULL,
    updated_at TEXT COLLATE "C" NOT NULL
);
CREATE INDEX crm_accounts_phone ON crm_accounts(phone_key);
CREATE INDEX crm_accounts_email ON crm_accounts(email_key);
CREATE INDEX crm_accounts_user ON crm_accounts(user_id);
CREATE INDEX crm_accounts_created ON crm_accounts(created_at DESC, id DESC);

CREATE TABLE crm_records (
    id TEXT COLLATE "C" PRIMARY KEY,
    ext_key TEXT COLLATE "C" UNIQUE,
    account_id TEXT COLLATE "C",
    title TEXT NOT NULL,
    status TEXT COLLATE "C" NOT NULL,
    closed_at TEXT COLLATE "C",
    leaf_queue TEXT,
    channel TEXT,
    owner_agent_id TEXT COLLATE "C",
    tags TEXT NOT NULL DEFAULT '[]',
    custom_fields TEXT NOT NULL DEFAULT '{}',
    abandoned BOOLEAN NOT NULL DEFAULT FALSE,
    missed_reason TEXT,
    created_at TEXT COLLATE "C" NOT NULL,
    updated_at TEXT COLLATE "C" NOT NULL
);
CREATE INDEX crm_records_account ON crm_records(account_id, created_at);

CREATE TABLE crm_record_sessions (
    record_id TEXT COLLATE "C" NOT NULL,
    session_id TEXT COLLATE "C" NOT NULL,
    added_at TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (record_id, session_id)
);
CREATE INDEX crm_record_sessions_session ON crm_record_sessions(session_id);

-- Activities, notes, attachments and session objects are keyed by the writer's key so a
-- replayed write updates instead of duplicating.
CREATE TABLE crm_activities (
    id TEXT COLLATE "C" PRIMARY KEY,
    ext_key TEXT COLLATE "C" NOT NULL UNIQUE,
    record_id TEXT COLLATE "C",
    account_id TEXT COLLATE "C",
    session_id TEXT COLLATE "C",
    subject TEXT NOT NULL,
    body TEXT NOT NULL,
    created_at TEXT COLLATE "C" NOT NULL,
    updated_at TEXT COLLATE "C" NOT NULL
);
CREATE INDEX crm_activities_record ON crm_activities(record_id);
CREATE INDEX crm_activities_account ON crm_activities(account_id);

CREATE TABLE crm_notes (
    id TEXT COLLATE "C" PRIMARY KEY,
    ext_key TEXT COLLATE "C" NOT NULL UNIQUE,
    record_id TEXT COLLATE "C" NOT NULL,
    body TEXT NOT NULL,
    created_at TEXT COLLATE "C" NOT NULL
);
CREATE INDEX crm_notes_record ON crm_notes(record_id);

CREATE TABLE crm_attachments (
    id TEXT COLLATE "C" PRIMARY KEY,
    ext_key TEXT COLLATE "C" NOT NULL UNIQUE,
    record_id TEXT COLLATE "C" NOT NULL,
    name TEXT NOT NULL,
    url TEXT,
    content TEXT,
    created_at TEXT COLLATE "C" NOT NULL
);
CREATE INDEX crm_attachments_record ON crm_attachments(record_id);

CREATE TABLE crm_session_objects (
    id TEXT COLLATE "C" PRIMARY KEY,
    session_id TEXT COLLATE "C" NOT NULL UNIQUE,
    record_id TEXT COLLATE "C",
    account_id TEXT COLLATE "C",
    data TEXT NOT NULL,
    created_at TEXT COLLATE "C" NOT NULL,
    updated_at TEXT COLLATE "C" NOT NULL
);
CREATE INDEX crm_session_objects_record ON crm_session_objects(record_id);

CREATE TABLE crm_agent_statuses (
    email_key TEXT COLLATE "C" PRIMARY KEY,
    email TEXT NOT NULL,
    crm_status TEXT NOT NULL,
    updated_at TEXT COLLATE "C" NOT NULL
);

CREATE TABLE crm_custom_fields (
    name TEXT COLLATE "C" PRIMARY KEY,
    object TEXT NOT NULL,
    label TEXT NOT NULL,
    type TEXT NOT NULL,
    created_at TEXT COLLATE "C" NOT NULL
);

-- Agents, wrap-up, dispositions, click-to-call, custom fields.
CREATE TABLE dispositions (
    code TEXT COLLATE "C" PRIMARY KEY,
    label TEXT NOT NULL,
    active BOOLEAN NOT NULL DEFAULT TRUE,
    created_at TEXT COLLATE "C" NOT NULL,
    updated_at TEXT COLLATE "C" NOT NULL
);

-- One row per agent; `state` is the sync state, updated with a compare-and-swap on `version`.
CREATE TABLE agents (
    id TEXT COLLATE "C" PRIMARY KEY,
    email TEXT NOT NULL,
    email_key TEXT COLLATE "C" NOT NULL UNIQUE,
    name TEXT,
    state TEXT NOT NULL DEFAULT '{}',
    version BIGINT NOT NULL DEFAULT 0,
    created_at TEXT COLLATE "C" NOT NULL,
    updated_at TEXT COLLATE "C" NOT NULL
);

CREATE TABLE dial_requests (
    id TEXT COLLATE "C" PRIMARY KEY,
    agent_id TEXT COLLATE "C" NOT NULL,
    phone TEXT NOT NULL,
    origin_record_id TEXT COLLATE "C",
    created_at TEXT COLLATE "C" NOT NULL
);

-- casebridge's own activity log: wrap-ups and missed/abandoned/voicemail sessions.
CREATE TABLE platform_activities (
    id TEXT COLLATE "C" PRIMARY KEY,
    ext_key TEXT COLLATE "C" NOT NULL UNIQUE,
    session_id TEXT COLLATE "C" NOT NULL,
    kind TEXT COLLATE "C" NOT NULL,
    action TEXT,
    person_ref TEXT COLLATE "C",
    person_is_key BOOLEAN NOT NULL DEFAULT FALSE,
    record_id TEXT COLLATE "C",
    related_by TEXT,
    disposition TEXT,
    label TEXT,
    notes TEXT,
    agent_id TEXT COLLATE "C",
    queue TEXT,
    channel TEXT,
    missed_reason TEXT,
    revision BIGINT NOT NULL DEFAULT 1,
    session_at TEXT COLLATE "C" NOT NULL,
    created_at TEXT COLLATE "C" NOT NULL,
    updated_at TEXT COLLATE "C" NOT NULL
);
CREATE INDEX platform_activities_session ON platform_activities(session_id);
CREATE INDEX platform_activities_person ON platform_activities(person_ref);
CREATE INDEX platform_activities_kind_at ON platform_activities(kind, session_at);

CREATE TABLE custom_fields (
    key TEXT COLLATE "C" PRIMARY KEY,
    crm_field TEXT NOT NULL,
    enabled_at TEXT COLLATE "C" NOT NULL
);

-- Native event formats: every platform event received, once by (source, native id).
CREATE TABLE native_events (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    source TEXT COLLATE "C" NOT NULL,
    native_id TEXT COLLATE "C" NOT NULL,
    session_id TEXT COLLATE "C" NOT NULL,
    type TEXT NOT NULL,
    at TEXT COLLATE "C" NOT NULL,
    body TEXT NOT NULL,
    event_ids TEXT NOT NULL DEFAULT '[]',
    received_at TEXT COLLATE "C" NOT NULL,
    UNIQUE (source, native_id)
);
CREATE INDEX native_events_session ON native_events(session_id, seq);

-- What the native events of a session have told so far.
CREATE TABLE native_sessions (
    session_id TEXT COLLATE "C" PRIMARY KEY,
    snapshot TEXT NOT NULL,
    updated_at TEXT COLLATE "C" NOT NULL
);
