-- Roles and the login throttle (security issue). Also upgrades a database made by the earlier
-- scripts: every statement is safe to run on one that has the appuser table already.
\connect appuser

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
