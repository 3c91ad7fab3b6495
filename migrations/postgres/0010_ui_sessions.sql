-- Web app sessions (DESIGN §12). The cookie holds a random 256-bit id; only its SHA-256 is kept.
-- A session stands for the personal key it was opened with: every request re-checks that key
-- (by id and digest), so revoking it, or removing or demoting its user, takes effect at once.
CREATE TABLE ui_sessions (
    digest       BYTEA PRIMARY KEY,
    team_id      BIGINT NOT NULL REFERENCES teams(id),
    key_id       TEXT NOT NULL,
    key_digest   BYTEA NOT NULL,
    created_at   BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL
);
CREATE INDEX ui_sessions_key ON ui_sessions (key_id);
