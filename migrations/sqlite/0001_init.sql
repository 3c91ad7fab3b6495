-- latch schema, SQLite. Times are Unix milliseconds. Names keep their spelling; `name_key`
-- columns hold the ASCII-lowercased name that uniqueness is enforced on (DESIGN §5).

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value BLOB NOT NULL
) STRICT;

CREATE TABLE teams (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    data_key    BLOB NOT NULL,          -- wrapped by the root key, bound to the team id
    key_version INTEGER NOT NULL,
    created_at  INTEGER NOT NULL
) STRICT;

CREATE TABLE users (
    id         INTEGER PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL
) STRICT;

CREATE TABLE members (
    team_id    INTEGER NOT NULL REFERENCES teams(id),
    user_id    INTEGER NOT NULL REFERENCES users(id),
    role       TEXT NOT NULL CHECK (role IN ('owner', 'admin', 'builder')),
    created_at INTEGER NOT NULL,
    PRIMARY KEY (team_id, user_id)
) STRICT;

CREATE TABLE api_keys (
    id               INTEGER PRIMARY KEY,
    key_id           TEXT NOT NULL UNIQUE,
    digest           BLOB NOT NULL,      -- SHA-256 of the whole key
    last4            TEXT NOT NULL,
    team_id          INTEGER NOT NULL REFERENCES teams(id),
    kind             TEXT NOT NULL CHECK (kind IN ('personal', 'team')),
    user_id          INTEGER REFERENCES users(id),   -- personal keys: the user they act as
    created_by       INTEGER NOT NULL REFERENCES users(id),
    role_at_creation TEXT CHECK (role_at_creation IN ('owner', 'admin', 'builder')),
    identity         TEXT,
    name             TEXT NOT NULL,
    created_at       INTEGER NOT NULL,
    expires_at       INTEGER,
    last_used_at     INTEGER,
    revoked_at       INTEGER,
    CHECK ((kind = 'personal') = (user_id IS NOT NULL)),
    CHECK ((kind = 'team') = (role_at_creation IS NOT NULL))
) STRICT;
CREATE INDEX api_keys_team ON api_keys(team_id);

CREATE TABLE secrets (
    id          INTEGER PRIMARY KEY,
    team_id     INTEGER NOT NULL REFERENCES teams(id),
    scope       TEXT NOT NULL CHECK (scope IN ('team', 'personal')),
    owner_id    INTEGER REFERENCES users(id),
    owner_key   INTEGER NOT NULL,      -- owner_id, or 0 for team secrets (unique needs non-null)
    name        TEXT NOT NULL,
    name_key    TEXT NOT NULL,
    description TEXT NOT NULL,
    version     INTEGER NOT NULL,
    key_version INTEGER NOT NULL,
    ciphertext  BLOB NOT NULL,
    value_len   INTEGER NOT NULL,
    created_at  INTEGER NOT NULL,
    created_by  INTEGER NOT NULL REFERENCES users(id),
    updated_at  INTEGER NOT NULL,
    updated_by  INTEGER NOT NULL REFERENCES users(id),
    UNIQUE (team_id, scope, owner_key, name_key),
    CHECK ((scope = 'personal') = (owner_id IS NOT NULL))
) STRICT;

CREATE TABLE environments (
    team_id     INTEGER NOT NULL REFERENCES teams(id),
    name        TEXT NOT NULL,
    description TEXT NOT NULL,
    secrets     TEXT,                  -- JSON array of names; NULL: no list
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (team_id, name)
) STRICT;

CREATE TABLE identities (
    team_id     INTEGER NOT NULL REFERENCES teams(id),
    name        TEXT NOT NULL,
    description TEXT NOT NULL,
    secrets     TEXT NOT NULL,         -- JSON array of team secret names
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (team_id, name)
) STRICT;

CREATE TABLE runs (
    id          TEXT PRIMARY KEY,
    team_id     INTEGER NOT NULL REFERENCES teams(id),
    key_id      TEXT NOT NULL,
    user_id     INTEGER REFERENCES users(id),  -- the key's user (personal keys), context or not
    record      TEXT NOT NULL,                 -- JSON: who, trigger, names, missing, shadowed
    status      TEXT NOT NULL,                 -- started, refused, finished
    started_at  INTEGER NOT NULL,
    ended_at    INTEGER,
    outcome     TEXT                           -- JSON: exit status, duration, masked counts
) STRICT;
CREATE INDEX runs_team_started ON runs(team_id, started_at);

CREATE TABLE audit (
    id         INTEGER PRIMARY KEY,
    team_id    INTEGER NOT NULL REFERENCES teams(id),
    at         INTEGER NOT NULL,
    actor_user INTEGER,
    actor_key  TEXT,
    action     TEXT NOT NULL,
    target     TEXT NOT NULL,
    outcome    TEXT NOT NULL,
    detail     TEXT NOT NULL               -- JSON; never a value
) STRICT;
CREATE INDEX audit_team_at ON audit(team_id, at);
