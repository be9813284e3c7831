-- Events move into a file of their own (casebridge-events.db), written once by intake and
-- never updated; what the rules applied is recorded here, in the commits of the sessions it
-- changed. An event above the mark is applied when listed in applied_events; one at or
-- below it is applied unless listed in held_events (the few the rules held back while the
-- mark moved past them). The events themselves are moved by casebridge after this migration
-- (they are in another file).
CREATE TABLE applied_events (seq INTEGER PRIMARY KEY);
CREATE TABLE held_events (seq INTEGER PRIMARY KEY);
CREATE TABLE applied_mark (id INTEGER PRIMARY KEY CHECK (id = 1), seq INTEGER NOT NULL);
INSERT INTO applied_mark (id, seq) VALUES (1, 0);
