-- The promotion service's database as the last release before versioned migrations left it
-- (postgres/postgresInit 01, 03, 04 of that release; tests/data/previous_release).
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

-- ---- promotions and seeds (03_promotion.sql)
-- The promotion service's database: promotions, their product lines and each line's discounts.

CREATE TABLE promotion (
    id                  bigint      PRIMARY KEY DEFAULT next_id(),
    name                text        NOT NULL,
    description         text        NOT NULL DEFAULT '',
    validfrom           timestamptz NOT NULL,
    validthru           timestamptz NOT NULL,
    active              boolean     NOT NULL DEFAULT false,
    customerid          bigint      NOT NULL,
    approvalstatus      integer     NOT NULL DEFAULT 0,
    prevapprovalstatus  integer     NOT NULL DEFAULT 0,
    createdate          timestamptz NOT NULL DEFAULT now(),
    updatedate          timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT promotion_valid_range CHECK (validthru > validfrom)
);
CREATE INDEX promotion_customer_idx ON promotion (customerid);

-- One row per product of a promotion; position keeps the order the caller gave.
CREATE TABLE promotion_product (
    promotionid  bigint  NOT NULL REFERENCES promotion (id) ON DELETE CASCADE,
    productid    bigint  NOT NULL,
    upccode      text    NOT NULL DEFAULT '',
    position     integer NOT NULL,
    PRIMARY KEY (promotionid, productid)
);
CREATE INDEX promotion_product_product_idx ON promotion_product (productid);

CREATE TABLE promotion_discount (
    promotionid  bigint           NOT NULL,
    productid    bigint           NOT NULL,
    id           bigint           NOT NULL DEFAULT next_id(),
    value        double precision NOT NULL,
    type         integer          NOT NULL,
    description  text             NOT NULL DEFAULT '',
    position     integer          NOT NULL,
    PRIMARY KEY (promotionid, productid, id),
    FOREIGN KEY (promotionid, productid)
        REFERENCES promotion_product (promotionid, productid) ON DELETE CASCADE
);

INSERT INTO promotion (name, description, validfrom, validthru, active, customerid) VALUES
    ('Promo1', 'Buy one, get one free', '2021-01-01', '2030-12-31', true, 3308341401806443521),
    ('Promo2', 'Ten percent off', '2021-01-01', '2030-12-31', true, 3308341401806443521),
    ('Promo3', 'Summer sale', '2021-06-01', '2030-08-31', false, 4308341401806443521);

INSERT INTO promotion_product (promotionid, productid, upccode, position)
SELECT id, 1001, '012345678905', 0 FROM promotion WHERE name = 'Promo1';

INSERT INTO promotion_discount (promotionid, productid, value, type, description, position)
SELECT id, 1001, 50, 1, 'half price', 0 FROM promotion WHERE name = 'Promo1';

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
