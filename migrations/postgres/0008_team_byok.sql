-- A team's BYOK setting (DESIGN §14): `allowed` (members' device keys may replace the team's
-- provider secrets in their local runs) or `forbidden`. Set by owners and admins.
ALTER TABLE teams ADD COLUMN byok TEXT NOT NULL DEFAULT 'allowed';
