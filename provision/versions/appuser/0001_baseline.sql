-- The user service's database as the last release before versioned migrations left it
-- (postgres/postgresInit 01, 02, 04, 05, 06 of that release; tests/data/previous_release).
-- A database that release made is marked as having this applied, not run again.

-- ---- time-ordered ids (01_next_id.sql; in this database instead of template1)
-- milliseconds since a custom epoch << 23 | shard << 10 | sequence % 1024.
CREATE SEQUENCE IF NOT EXISTS global_id_sequence;

CREATE OR REPLACE FUNCTION next_id(OUT result bigint) AS $$
DECLARE
    custom_epoch bigint := 1314220021721;  -- 2011-08-24T21:07:01.721Z
    shard_id     int    := 1;
    seq_id       bigint;
    now_millis   bigint;
BEGIN
    SELECT nextval('global_id_sequence') % 1024 INTO seq_id;
    SELECT floor(extract(epoch FROM clock_timestamp()) * 1000) INTO now_millis;
    result := ((now_millis - custom_epoch) << 23) | (shard_id << 10) | seq_id;
END;
$$ LANGUAGE plpgsql;

-- ---- users and seeds (02_appuser.sql)
-- The user service's database: appuser table and the three seed users (password 1234).

CREATE TABLE appuser (
    id          bigint      PRIMARY KEY DEFAULT next_id(),
    firstname   text        NOT NULL,
    lastname    text        NOT NULL,
    name        text        GENERATED ALWAYS AS (firstname || ' ' || lastname) STORED,
    validfrom   timestamptz NOT NULL,
    validthru   timestamptz NOT NULL,
    active      boolean     NOT NULL DEFAULT true,
    pwd         text        NOT NULL,
    email       text        NOT NULL,
    company     text        NOT NULL DEFAULT '',
    createdate  timestamptz NOT NULL DEFAULT now(),
    updatedate  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT appuser_valid_range CHECK (validthru > validfrom)
);

-- Email is unique regardless of case; the index also closes the check-then-insert race.
CREATE UNIQUE INDEX appuser_email_lower_key ON appuser (lower(email));

INSERT INTO appuser (firstname, lastname, validfrom, validthru, active, pwd, email, company) VALUES
    ('Super', 'Duck', '2000-01-01', '2200-01-01', true,
     '$2b$10$Cii1nKCmZ5.MKuDvNZEYKeiGkQ5BoNit43MBEAGmzMSAtod20N3f2', 'duck@mymail.com', 'DC'),
    ('Mighty', 'Ant', '2000-01-01', '2200-01-01', true,
     '$2b$10$pIEYl2ahnD8EW9nCpWe7ZOLNl47wvEGv2/j3YvshnkzHoWcoORNhS', 'ant@mymail.com', 'Marvel'),
    ('Awesome', 'Cow', '2000-01-01', '2200-01-01', true,
     '$2b$10$X.WkFLvd1uuEwO6nrbhyp.3Hk5.ktpHE5tJnEkTRkAXL4RzTj8uEW', 'cow@mymail.com', 'Groot');

-- ---- transactional outbox (audit_outbox.psql)
CREATE TABLE IF NOT EXISTS audit_outbox (
    eventid    uuid        PRIMARY KEY,
    createdat  timestamptz NOT NULL DEFAULT clock_timestamp(),
    subject    text        NOT NULL,
    headers    jsonb       NOT NULL,
    payload    bytea       NOT NULL,
    sentat     timestamptz
);
-- The relay only ever looks for unsent rows, oldest first.
CREATE INDEX IF NOT EXISTS audit_outbox_pending_idx
    ON audit_outbox (createdat, eventid) WHERE sentat IS NULL;

-- ---- roles and login throttle (05_roles_and_login_throttle.sql)
-- admin or member; a user made before roles existed is a member until an admin says otherwise.
ALTER TABLE appuser ADD COLUMN IF NOT EXISTS role text NOT NULL DEFAULT 'member'
    CONSTRAINT appuser_role_check CHECK (role IN ('admin', 'member'));

-- Seed roles: Super Duck administers; Mighty Ant and Awesome Cow are members (the default).
UPDATE appuser SET role = 'admin' WHERE lower(email) = 'duck@mymail.com';

-- Failed logins per email (lower-cased), shared by every user-service instance. A row counts
-- the failures since windowstart; once they reach the limit, windowstart moves to that
-- failure and every attempt is refused until the window has passed. throttlenoted: the
-- refused attempts of this window are already in the audit history (once per window).
CREATE TABLE IF NOT EXISTS login_throttle (
    email          text        PRIMARY KEY,
    windowstart    timestamptz NOT NULL,
    failures       integer     NOT NULL,
    throttlenoted  boolean     NOT NULL DEFAULT false
);
-- Rows whose window has passed are purged by age.
CREATE INDEX IF NOT EXISTS login_throttle_windowstart_idx ON login_throttle (windowstart);

-- ---- refresh tokens (06_refresh_tokens.sql)
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
