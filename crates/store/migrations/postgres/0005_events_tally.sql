-- Events waiting for the rules, counted by statement triggers as `outbox_tally` counts the
-- outbox (a slot of 16 a connection): intake's back-pressure reads the count every 250 ms,
-- and counting the partial index of waiting events took 5-15 ms a read under load, growing
-- with the backlog and with the index's dead entries.
CREATE TABLE events_tally (
    slot SMALLINT PRIMARY KEY,
    n BIGINT NOT NULL
);
INSERT INTO events_tally (slot, n) SELECT 0, COUNT(*) FROM events WHERE NOT applied;

CREATE FUNCTION cb_events_tally() RETURNS trigger AS $$
DECLARE
    d BIGINT;
BEGIN
    IF TG_OP = 'INSERT' THEN
        SELECT COUNT(*) INTO d FROM new_rows WHERE NOT applied;
    ELSIF TG_OP = 'DELETE' THEN
        SELECT -COUNT(*) INTO d FROM old_rows WHERE NOT applied;
    ELSE
        SELECT (SELECT COUNT(*) FROM new_rows WHERE NOT applied) - (SELECT COUNT(*) FROM old_rows WHERE NOT applied) INTO d;
    END IF;
    IF d <> 0 THEN
        INSERT INTO events_tally (slot, n) VALUES ((pg_backend_pid() % 16)::SMALLINT, d)
            ON CONFLICT (slot) DO UPDATE SET n = events_tally.n + excluded.n;
    END IF;
    RETURN NULL;
END
$$ LANGUAGE plpgsql;

CREATE TRIGGER events_tally_insert AFTER INSERT ON events REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION cb_events_tally();
CREATE TRIGGER events_tally_update AFTER UPDATE ON events REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION cb_events_tally();
CREATE TRIGGER events_tally_delete AFTER DELETE ON events REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION cb_events_tally();
