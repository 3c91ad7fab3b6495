-- Failed authentications per client address and per key id, per fixed window, shared by every
-- replica so that the rate limit holds for the whole deployment, not per replica.
CREATE TABLE auth_failures (
    bucket       TEXT NOT NULL,
    window_start BIGINT NOT NULL,
    count        BIGINT NOT NULL,
    PRIMARY KEY (bucket, window_start)
);
CREATE INDEX auth_failures_window ON auth_failures(window_start);
