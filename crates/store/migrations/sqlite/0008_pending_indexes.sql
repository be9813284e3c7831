-- Claims, lane batches and busy-key checks look at pending writes only, through partial
-- indexes, so their cost does not grow with the delivered history.
CREATE INDEX outbox_pending_due ON outbox(next_attempt_at, id) WHERE state = 'pending';
CREATE INDEX outbox_pending_lane ON outbox(lane, id) WHERE state = 'pending';
-- A delivered write no longer makes its customer keys busy: its keys go.
CREATE INDEX outbox_keys_outbox ON outbox_keys(outbox_id);
DELETE FROM outbox_keys WHERE outbox_id IN (SELECT id FROM outbox WHERE state = 'done');
