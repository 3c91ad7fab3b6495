-- An audit log a security lead can rely on, run filters, and revisions for If-Match (DESIGN §9,
-- §10).

-- Audit events say who acted (the key's user, or the team key's creator it acts on behalf of),
-- with what capability, from where, and may belong to no team: a failed authentication whose
-- key id matches no key.
ALTER TABLE audit ALTER COLUMN team_id DROP NOT NULL;
ALTER TABLE audit ADD COLUMN actor_name TEXT;
ALTER TABLE audit ADD COLUMN on_behalf_of TEXT;
ALTER TABLE audit ADD COLUMN capability TEXT;
ALTER TABLE audit ADD COLUMN client_addr TEXT;
ALTER TABLE audit ADD COLUMN user_agent TEXT;
UPDATE audit SET actor_name = detail::jsonb ->> 'actor';
CREATE INDEX audit_team_id ON audit(team_id, id);

-- Runs are filtered by identity and environment: columns, filled from the records of old runs.
ALTER TABLE runs ADD COLUMN identity TEXT;
ALTER TABLE runs ADD COLUMN environment TEXT;
UPDATE runs r SET identity = r.record::jsonb -> 'who' ->> 'identity';
UPDATE runs r SET environment = coalesce(
    (SELECT d.record::jsonb ->> 'environment' FROM run_decisions d WHERE d.digest = r.decision),
    r.record::jsonb ->> 'environment');
CREATE INDEX runs_team_order ON runs(team_id, started_at, id);

-- A revision per secret, environment and identity, moved by every write: the ETag that
-- If-Match compares, so two editors never silently overwrite each other.
ALTER TABLE secrets ADD COLUMN revision BIGINT NOT NULL DEFAULT 1;
ALTER TABLE environments ADD COLUMN revision BIGINT NOT NULL DEFAULT 1;
ALTER TABLE identities ADD COLUMN revision BIGINT NOT NULL DEFAULT 1;
