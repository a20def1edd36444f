-- The audit database as the last release before versioned migrations left it
-- (timescaledb/timescaleInit 01 and 02 of that release; tests/data/previous_release).
-- A database that release made is marked as having this applied, not run again.
-- The storage decision and its guarded CREATE EXTENSION run before this, with the admin
-- credential (provision/admin/audit.sql): an extension is the superuser's to create.

-- ---- the history (01_audit.sql): a TimescaleDB hypertable on actiontime when the
-- extension is there, an ordinary table (same columns, same keys) when it is not.
CREATE TABLE IF NOT EXISTS audit (
    actiontime    timestamptz NOT NULL,
    topic         text        NOT NULL,
    service       text        NOT NULL,
    actionfunc    text        NOT NULL,
    actiontype    text        NOT NULL,
    objectname    text        NOT NULL,
    objectid      text        NOT NULL,
    performedby   text        NOT NULL,
    recordedtime  timestamptz NOT NULL DEFAULT now(),
    objectdetail  bytea,
    eventid       uuid        NOT NULL,
    payloadtype   text        NOT NULL DEFAULT '',
    -- A redelivered event is stored once; a hypertable's unique keys must hold its time column.
    CONSTRAINT audit_event_unique UNIQUE (eventid, actiontime)
);

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb') THEN
        PERFORM create_hypertable('audit', 'actiontime', if_not_exists => TRUE,
                                 migrate_data => TRUE);
        RAISE NOTICE 'audit is a TimescaleDB hypertable on actiontime';
    END IF;
END
$$;

CREATE INDEX IF NOT EXISTS audit_object_idx ON audit (objectname, objectid, actiontime DESC);
CREATE INDEX IF NOT EXISTS audit_service_idx ON audit (service, actiontime DESC);

-- Messages that could not be read as audit events: kept for inspection, never retried.
CREATE TABLE IF NOT EXISTS audit_rejects (
    id          bigserial   PRIMARY KEY,
    receivedat  timestamptz NOT NULL DEFAULT now(),
    subject     text        NOT NULL,
    headers     jsonb       NOT NULL,
    payload     bytea       NOT NULL,
    reason      text        NOT NULL
);

-- goTemp's three seed rows.
INSERT INTO audit (actiontime, topic, service, actionfunc, actiontype, objectname, objectid,
                   performedby, objectdetail, eventid, payloadtype)
VALUES
    ('2021-01-01 10:00:00+00', 'Audit', 'goTemp.api.user', 'AfterCreateUser', 'insert', 'user',
     '2234567890', '1234567890', NULL, '00000000-0000-4000-8000-000000000001', ''),
    ('2021-01-01 11:00:00+00', 'Audit', 'goTemp.api.user', 'AfterUpdateUser', 'update', 'user',
     '2234567890', '1234567890', NULL, '00000000-0000-4000-8000-000000000002', ''),
    ('2021-01-01 12:00:00+00', 'Audit', 'goTemp.api.promotion', 'AfterCreatePromotion', 'insert',
     'promotion', '3234567890', '1234567890', NULL, '00000000-0000-4000-8000-000000000003', '')
ON CONFLICT DO NOTHING;

-- ---- tamper evidence and rejects' kinds (02_audit_chain.sql)
-- Each row stored from now on carries its chain, its place in it and its hash
-- (audit/server/chain.py); rows stored before keep NULL there and verify as "unchained".
ALTER TABLE audit ADD COLUMN IF NOT EXISTS chainid   integer;
ALTER TABLE audit ADD COLUMN IF NOT EXISTS chainseq  bigint;
ALTER TABLE audit ADD COLUMN IF NOT EXISTS chainhash bytea;
CREATE INDEX IF NOT EXISTS audit_chain_idx ON audit (chainid, chainseq);

-- The last row of each chain. A batch claims one free chain (FOR UPDATE SKIP LOCKED), so
-- batches stored at once take different chains; 16 is more than batches ever in flight.
CREATE TABLE IF NOT EXISTS audit_chain_heads (
    chainid    integer     PRIMARY KEY,
    chainseq   bigint      NOT NULL DEFAULT 0,
    chainhash  bytea       NOT NULL DEFAULT '\x0000000000000000000000000000000000000000000000000000000000000000'::bytea,
    createdat  timestamptz NOT NULL DEFAULT now()
);
INSERT INTO audit_chain_heads (chainid) SELECT generate_series(1, 16) ON CONFLICT DO NOTHING;

-- Why a message was terminated: malformed, unauthenticated, altered, wrong-service, refused.
-- Operators count them: SELECT kind, count(*) FROM audit_rejects GROUP BY kind.
ALTER TABLE audit_rejects ADD COLUMN IF NOT EXISTS kind text NOT NULL DEFAULT 'malformed';
CREATE INDEX IF NOT EXISTS audit_rejects_kind_idx ON audit_rejects (kind, receivedat);
