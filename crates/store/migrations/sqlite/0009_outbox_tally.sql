-- CRM writes by state, kept up to date by triggers, so /metrics reads three rows instead of
-- counting the whole outbox.
CREATE TABLE outbox_tally (
    state TEXT PRIMARY KEY,
    n INTEGER NOT NULL
);
INSERT INTO outbox_tally (state, n) SELECT state, COUNT(*) FROM outbox GROUP BY state;

CREATE TRIGGER outbox_tally_insert AFTER INSERT ON outbox BEGIN
    INSERT INTO outbox_tally (state, n) VALUES (new.state, 1)
        ON CONFLICT(state) DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER outbox_tally_update AFTER UPDATE OF state ON outbox WHEN old.state <> new.state BEGIN
    UPDATE outbox_tally SET n = n - 1 WHERE state = old.state;
    INSERT INTO outbox_tally (state, n) VALUES (new.state, 1)
        ON CONFLICT(state) DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER outbox_tally_delete AFTER DELETE ON outbox BEGIN
    UPDATE outbox_tally SET n = n - 1 WHERE state = old.state;
END;
