-- Least-privilege keys and a member lifecycle that never revives a credential (DESIGN §3).

-- A user is one membership's person: removing a member and adding the name again makes a new
-- user, who inherits nothing. Names are labels, unique among a team's current members (checked
-- when a member is added), no longer unique for all time.
ALTER TABLE users DROP CONSTRAINT IF EXISTS users_name_key;
CREATE INDEX users_name ON users(name);

-- Each key's capability: `run` (start runs, finish and read its own, whoami) or `manage`
-- (everything its role allows). Personal keys made before keep managing; team keys made before
-- become `run`, the least power: a team key that must manage is made again with `--manage`.
-- A key bound to an identity is always `run`.
ALTER TABLE api_keys ADD COLUMN capability TEXT NOT NULL DEFAULT 'run'
    CHECK (capability IN ('run', 'manage') AND (identity IS NULL OR capability = 'run'));
UPDATE api_keys SET capability = 'manage' WHERE kind = 'personal';

-- Members removed before this version kept their keys and personal secrets, to be revived if
-- the name came back. Removal is final now: their keys are revoked and their personal secrets
-- deleted, each recorded in the audit log.
INSERT INTO audit (team_id, at, actor_user, actor_key, action, target, outcome, detail)
SELECT k.team_id, (extract(epoch FROM now()) * 1000)::bigint, NULL, NULL,
       'api_key.revoke', k.key_id, 'ok',
       json_build_object('name', k.name, 'reason', 'its user was removed before this upgrade')::text
FROM api_keys k
WHERE k.kind = 'personal' AND k.revoked_at IS NULL
  AND NOT EXISTS (SELECT 1 FROM members m WHERE m.team_id = k.team_id AND m.user_id = k.user_id);
UPDATE api_keys k SET revoked_at = (extract(epoch FROM now()) * 1000)::bigint
WHERE k.kind = 'personal' AND k.revoked_at IS NULL
  AND NOT EXISTS (SELECT 1 FROM members m WHERE m.team_id = k.team_id AND m.user_id = k.user_id);

INSERT INTO audit (team_id, at, actor_user, actor_key, action, target, outcome, detail)
SELECT s.team_id, (extract(epoch FROM now()) * 1000)::bigint, NULL, NULL,
       'secret.delete', 'personal/' || s.name, 'ok',
       json_build_object('name', s.name, 'owner', u.name,
                         'reason', 'its owner was removed before this upgrade')::text
FROM secrets s JOIN users u ON u.id = s.owner_id
WHERE s.scope = 'personal'
  AND NOT EXISTS (SELECT 1 FROM members m WHERE m.team_id = s.team_id AND m.user_id = s.owner_id);
DELETE FROM secrets s
WHERE s.scope = 'personal'
  AND NOT EXISTS (SELECT 1 FROM members m WHERE m.team_id = s.team_id AND m.user_id = s.owner_id);
