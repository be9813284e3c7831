-- Writes leased to a node: the heartbeat renews, frees and counts them by owner. Without this
-- index each beat read every pending write (a million held back: a second of writer lock).
CREATE INDEX outbox_leased ON outbox(lease_owner, lease_until_ms) WHERE lease_owner IS NOT NULL;
