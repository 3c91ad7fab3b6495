-- An audit log a security lead can rely on, run filters, and revisions for If-Match (DESIGN §9,
-- §10). Runs with foreign-key enforcement off (SqliteStore::open), for the table rebuild.

-- Audit events say who acted (the key's user, or the team key's creator it acts on behalf of),
-- with what capability, from where, and may belong to no team: a failed authentication whose
-- key id matches no key.
CREATE TABLE audit_new (
    id           INTEGER PRIMARY KEY,
    team_id      INTEGER REFERENCES teams(id),   -- NULL: no team (an unknown key)
    at           INTEGER NOT NULL,
    actor_user   INTEGER,
    actor_key    TEXT,
    actor_name   TEXT,                           -- the acting user's name, when a user acted
    on_behalf_of TEXT,                           -- a team key's creator's name
    capability   TEXT,                           -- the acting key's capability
    client_addr  TEXT,                           -- after --trusted-proxy
    user_agent   TEXT,
    action       TEXT NOT NULL,
    target       TEXT NOT NULL,
    outcome      TEXT NOT NULL,
    detail       TEXT NOT NULL                   -- JSON; never a value
) STRICT;
INSERT INTO audit_new (id, team_id, at, actor_user, actor_key, actor_name, action, target,
                       outcome, detail)
SELECT id, team_id, at, actor_user, actor_key,
       CASE WHEN json_valid(detail) THEN json_extract(detail, '$.actor') END,
       action, target, outcome, detail
FROM audit;
DROP TABLE audit;
ALTER TABLE audit_new RENAME TO audit;
CREATE INDEX audit_team_id ON audit(team_id, id);

-- Runs are filtered by identity and environment: columns, filled from the records of old runs.
ALTER TABLE runs ADD COLUMN identity TEXT;
ALTER TABLE runs ADD COLUMN environment TEXT;
UPDATE runs SET identity = json_extract(record, '$.who.identity')
WHERE json_valid(record);
UPDATE runs SET environment = coalesce(
    (SELECT json_extract(d.record, '$.environment') FROM run_decisions d
     WHERE d.digest = runs.decision AND json_valid(d.record)),
    CASE WHEN json_valid(record) THEN json_extract(record, '$.environment') END);
CREATE INDEX runs_team_order ON runs(team_id, started_at, id);

-- A revision per secret, environment and identity, moved by every write: the ETag that
-- If-Match compares, so two editors never silently overwrite each other.
ALTER TABLE secrets ADD COLUMN revision INTEGER NOT NULL DEFAULT 1;
ALTER TABLE environments ADD COLUMN revision INTEGER NOT NULL DEFAULT 1;
ALTER TABLE identities ADD COLUMN revision INTEGER NOT NULL DEFAULT 1;
