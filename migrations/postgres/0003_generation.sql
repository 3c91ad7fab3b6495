-- The configuration generation: every change to keys, members, secrets, environments or
-- identities increments it in its own transaction, so a replica can tell from one row, read in
-- a resolving transaction's snapshot, whether what it kept from an earlier request still holds.
CREATE TABLE generation (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    n  BIGINT NOT NULL
);
INSERT INTO generation (id, n) VALUES (1, 0);
