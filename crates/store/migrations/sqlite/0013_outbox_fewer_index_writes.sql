-- A CRM write's completion rewrote an entry of two indexes that no hot read needs:
-- outbox_due (state, lane, id) over every row, done ones included, and outbox_session
-- (session_id, state). The one read by state that is not about pending rows lists dead
-- letters; pending rows have their own partial indexes; a session's rows are few.
DROP INDEX outbox_due;
CREATE INDEX outbox_dead ON outbox(id) WHERE state = 'dead';
DROP INDEX outbox_session;
CREATE INDEX outbox_session ON outbox(session_id);
