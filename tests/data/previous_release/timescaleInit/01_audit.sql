-- The audit history: one row per change event, a TimescaleDB hypertable on actiontime when the
-- extension is there, an ordinary table (same columns, same keys) when it is not.
-- How the audit table is stored, decided from what the server reports, never by trying
-- CREATE EXTENSION: where TimescaleDB is installed but not in shared_preload_libraries, that
-- statement ends the session with a FATAL error that no exception handler catches.
--   'hypertable'      the library is preloaded and the extension available (the real image)
--   'table'           TimescaleDB is not installed here (plain PostgreSQL)
--   'table-warning'   installed or preloaded but not both: an ordinary table, and a WARNING
CREATE OR REPLACE FUNCTION audit_storage_decision(preload text, available boolean)
RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE
        WHEN preloaded AND available THEN 'hypertable'
        WHEN preloaded OR available THEN 'table-warning'
        ELSE 'table'
    END
    -- entries as the server reports them: 'timescaledb', '$libdir/timescaledb', quoted
    FROM (SELECT EXISTS (
              SELECT 1 FROM unnest(string_to_array(coalesce(preload, ''), ',')) AS entry
              WHERE btrim(entry, ' "') ~ '(^|/)timescaledb$'
          ) AS preloaded) AS facts
$$;

DO $$
DECLARE
    decision text := audit_storage_decision(
        current_setting('shared_preload_libraries', true),
        EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'));
BEGIN
    IF decision = 'hypertable' THEN
        CREATE EXTENSION IF NOT EXISTS timescaledb;
    ELSIF decision = 'table-warning' THEN
        RAISE WARNING 'timescaledb is installed but not in shared_preload_libraries (or the '
            'reverse): audit is an ordinary table; add timescaledb to shared_preload_libraries '
            'and restart for a hypertable';
    ELSE
        RAISE NOTICE 'timescaledb is not installed: audit is an ordinary table';
    END IF;
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
