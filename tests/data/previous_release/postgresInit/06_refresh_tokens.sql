-- Refresh tokens (security issue). Also upgrades a database made by the earlier scripts.
\connect appuser

-- Only a refresh token's SHA-256 is stored. One login starts a family; every refresh uses up
-- its token (usedat) and adds the next one to the family. A used token presented again means
-- it was copied: the whole family is revoked. Deleting a user deletes their tokens.
CREATE TABLE IF NOT EXISTS refresh_token (
    tokenhash  bytea       PRIMARY KEY,
    familyid   uuid        NOT NULL,
    userid     bigint      NOT NULL REFERENCES appuser (id) ON DELETE CASCADE,
    createdat  timestamptz NOT NULL DEFAULT now(),
    expiresat  timestamptz NOT NULL,
    usedat     timestamptz,
    revokedat  timestamptz
);
CREATE INDEX IF NOT EXISTS refresh_token_familyid_idx ON refresh_token (familyid);
CREATE INDEX IF NOT EXISTS refresh_token_userid_idx ON refresh_token (userid);
CREATE INDEX IF NOT EXISTS refresh_token_expiresat_idx ON refresh_token (expiresat);
