-- Run by the provisioner with the admin credential in the audit database before its
-- migrations, every time (it may run again): whether audit becomes a TimescaleDB hypertable,
-- and the extension when it does (an extension is the superuser's to create; the baseline
-- migration, run by the owner, makes the hypertable when the extension is there).
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

