-- The promotion service's database: promotions, their product lines and each line's discounts.
CREATE DATABASE promotion;
\connect promotion

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
