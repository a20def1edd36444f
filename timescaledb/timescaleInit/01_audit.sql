-- The audit history: one row per change event, a TimescaleDB hypertable on actiontime when the
-- extension is there, an ordinary table (same columns, same keys) when it is not.
DO $$
BEGIN
    CREATE EXTENSION IF NOT EXISTS timescaledb;
EXCEPTION WHEN OTHERS THEN
    RAISE NOTICE 'timescaledb extension not available (%): audit will be an ordinary table', SQLERRM;
END
$$;

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
        PERFORM create_hypertable('audit', 'actiontime', if_not_exists => TRUE);
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
