-- Pending writes are found through partial indexes, so claiming the next writes, a lane's
-- batch and the busy-key check cost the same with 10 or 1,000,000 writes pending or done.
CREATE INDEX outbox_pending_due ON outbox(next_attempt_at, id) WHERE state = 'pending';
CREATE INDEX outbox_pending_lane ON outbox(lane, id) WHERE state = 'pending';

-- A delivered write no longer makes its customer keys busy: its keys go (a parked one keeps
-- them, for when it is put back in line).
CREATE INDEX outbox_keys_outbox ON outbox_keys(outbox_id);
DELETE FROM outbox_keys k USING outbox o WHERE o.id = k.outbox_id AND o.state = 'done';

-- Writes by state, kept by statement triggers so that /metrics does not count the outbox. A
-- connection adds to its own slot of 16 (concurrent transactions rarely wait for the same
-- row), and a statement takes its rows in the order of their state names, so tally rows
-- never deadlock.
CREATE TABLE outbox_tally (
    state TEXT COLLATE "C" NOT NULL,
    slot SMALLINT NOT NULL,
    n BIGINT NOT NULL,
    PRIMARY KEY (state, slot)
);
INSERT INTO outbox_tally (state, slot, n) SELECT state, 0, COUNT(*) FROM outbox GROUP BY state;

CREATE FUNCTION cb_outbox_tally() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO outbox_tally (state, slot, n)
            SELECT state, (pg_backend_pid() % 16)::SMALLINT, COUNT(*) FROM new_rows GROUP BY state ORDER BY state
            ON CONFLICT (state, slot) DO UPDATE SET n = outbox_tally.n + excluded.n;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO outbox_tally (state, slot, n)
            SELECT state, (pg_backend_pid() % 16)::SMALLINT, -COUNT(*) FROM old_rows GROUP BY state ORDER BY state
            ON CONFLICT (state, slot) DO UPDATE SET n = outbox_tally.n + excluded.n;
    ELSE
        -- Most updates (leases, attempts) leave the states as they were: nothing to write.
        INSERT INTO outbox_tally (state, slot, n)
            SELECT state, (pg_backend_pid() % 16)::SMALLINT, SUM(d) FROM (
                SELECT state, 1 AS d FROM new_rows UNION ALL SELECT state, -1 FROM old_rows
            ) AS x GROUP BY state HAVING SUM(d) <> 0 ORDER BY state
            ON CONFLICT (state, slot) DO UPDATE SET n = outbox_tally.n + excluded.n;
    END IF;
    RETURN NULL;
END
$$ LANGUAGE plpgsql;

CREATE TRIGGER outbox_tally_insert AFTER INSERT ON outbox REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION cb_outbox_tally();
CREATE TRIGGER outbox_tally_update AFTER UPDATE ON outbox REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION cb_outbox_tally();
CREATE TRIGGER outbox_tally_delete AFTER DELETE ON outbox REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION cb_outbox_tally();
