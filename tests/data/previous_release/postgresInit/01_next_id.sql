-- Time-ordered 64-bit ids, created in template1 so every database made after it has them:
-- milliseconds since a custom epoch << 23 | shard << 10 | sequence % 1024.
\connect template1

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
