-- Agents, wrap-up, dispositions, click-to-call, custom fields (behaviour.md §9–12).
CREATE TABLE dispositions (
    code TEXT PRIMARY KEY,
    label TEXT NOT NULL,
    active INTEGER NOT NULL DEFAULT 1,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

-- One row per agent; `state` is the sync state (rules crate `agent::AgentState`), updated
-- with a compare-and-swap on `version`.
CREATE TABLE agents (
    id TEXT PRIMARY KEY,
    email TEXT NOT NULL,
    email_key TEXT NOT NULL UNIQUE,
    name TEXT,
    state TEXT NOT NULL DEFAULT '{}',
    version INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE TABLE dial_requests (
    id TEXT PRIMARY KEY,
    agent_id TEXT NOT NULL,
    phone TEXT NOT NULL,
    origin_record_id TEXT,
    created_at TEXT NOT NULL
);

-- casebridge's own activity log: wrap-ups and missed/abandoned/voicemail sessions.
CREATE TABLE platform_activities (
    id TEXT PRIMARY KEY,
    ext_key TEXT NOT NULL UNIQUE,
    session_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    action TEXT,
    person_ref TEXT,
    person_is_key INTEGER NOT NULL DEFAULT 0,
    record_id TEXT,
    related_by TEXT,
    disposition TEXT,
    label TEXT,
    notes TEXT,
    agent_id TEXT,
    queue TEXT,
    channel TEXT,
    missed_reason TEXT,
    revision INTEGER NOT NULL DEFAULT 1,
    session_at TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX platform_activities_session ON platform_activities(session_id);
CREATE INDEX platform_activities_person ON platform_activities(person_ref);
CREATE INDEX platform_activities_kind_at ON platform_activities(kind, session_at);

CREATE TABLE custom_fields (
    key TEXT PRIMARY KEY,
    crm_field TEXT NOT NULL,
    enabled_at TEXT NOT NULL
);

ALTER TABLE sessions ADD COLUMN agent_id TEXT;
ALTER TABLE sessions ADD COLUMN over INTEGER NOT NULL DEFAULT 0;
CREATE INDEX sessions_agent_active ON sessions(agent_id) WHERE over = 0;

-- Built-in CRM: agent statuses, custom field definitions, person fields.
CREATE TABLE crm_agent_statuses (
    email_key TEXT PRIMARY KEY,
    email TEXT NOT NULL,
    crm_status TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE crm_custom_fields (
    name TEXT PRIMARY KEY,
    object TEXT NOT NULL,
    label TEXT NOT NULL,
    type TEXT NOT NULL,
    created_at TEXT NOT NULL
);
ALTER TABLE crm_accounts ADD COLUMN custom_fields TEXT NOT NULL DEFAULT '{}';
