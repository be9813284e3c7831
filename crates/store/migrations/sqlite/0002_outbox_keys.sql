-- Every customer key a CRM write concerns (app user id, phone, email, account), so a lookup
-- for any of them waits until the writes that concern it are delivered.
CREATE TABLE outbox_keys (
    key TEXT NOT NULL,
    outbox_id INTEGER NOT NULL,
    PRIMARY KEY (key, outbox_id)
);
