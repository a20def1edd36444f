-- The user service's database: appuser table and the three seed users (password 1234).
CREATE DATABASE appuser;
\connect appuser

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
