-- A run record in two parts. What follows from the resolution (environment, names asked for,
-- trigger, delivered names and versions, missing, shadowed) is the same for every run with the
-- same inputs over the same team state: it is stored once here, by its SHA-256, and each run
-- refers to it and keeps only its own part (who started it). A run of a hundred secrets no
-- longer writes a hundred names again. Names only, never values. Runs recorded before this
-- have no decision and keep their whole record.
CREATE TABLE run_decisions (
    digest BYTEA PRIMARY KEY,  -- SHA-256 of record
    record TEXT NOT NULL       -- JSON object, merged into each referring run's record
);

-- No foreign key: a run's REPEATABLE READ transaction cannot see a shared record that another
-- replica committed after its snapshot began, and a foreign key check would refuse the run.
-- Each run's transaction stores its record itself, or sees it stored (see `PgStore::resolve_run`).
ALTER TABLE runs ADD COLUMN decision BYTEA;
