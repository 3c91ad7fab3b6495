-- A team's sealing key pair (DESIGN §12): writers (the web app, the CLI) seal values to the
-- public half with HPKE; the private half is wrapped by the root key like the data key. Made on
-- first use; NULL until then.
ALTER TABLE teams ADD COLUMN seal_key_id TEXT;
ALTER TABLE teams ADD COLUMN seal_public BLOB;
ALTER TABLE teams ADD COLUMN seal_private BLOB;
