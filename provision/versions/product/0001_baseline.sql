-- The product service's database: products (goTemp's fields), time-ordered ids and the transactional outbox its
-- audit events wait in until the relay publishes them.

-- ---- time-ordered ids: milliseconds since a custom epoch << 23 | shard << 10 | sequence % 1024
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

-- ---- products
CREATE TABLE product (
    id           bigint      PRIMARY KEY DEFAULT next_id(),
    name         text        NOT NULL,
    -- where the product sits in the catalog (goTemp's hierarchyLevel)
    hierarchylevel text      NOT NULL DEFAULT '',
    validfrom    timestamptz NOT NULL,
    validthru    timestamptz NOT NULL,
    -- free-form attributes: a JSON object (the service limits its size)
    extrafields  jsonb       NOT NULL DEFAULT '{}',
    createdate   timestamptz NOT NULL DEFAULT now(),
    updatedate   timestamptz NOT NULL DEFAULT now(),
    -- the id of the user who changed it last
    modifiedby   text        NOT NULL DEFAULT '',
    CONSTRAINT product_valid_range CHECK (validthru > validfrom),
    CONSTRAINT product_extrafields_object CHECK (jsonb_typeof(extrafields) = 'object')
);
CREATE INDEX product_name_idx ON product (name);
CREATE INDEX product_validity_idx ON product (validfrom, validthru);

-- ---- transactional outbox (global_utils/messaging/outbox.py)
CREATE TABLE audit_outbox (
    eventid      uuid        PRIMARY KEY,
    createdat    timestamptz NOT NULL DEFAULT clock_timestamp(),
    subject      text        NOT NULL,
    headers      jsonb       NOT NULL,
    payload      bytea       NOT NULL,
    sentat       timestamptz,
    traceparent  text
);
-- The relay only ever looks for unsent rows, oldest first.
CREATE INDEX audit_outbox_pending_idx ON audit_outbox (createdat, eventid) WHERE sentat IS NULL;
