-- Tamper evidence and authenticated events (issue 18): an upgrade of an existing audit
-- database as much as part of a new one; every statement may run again.
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
