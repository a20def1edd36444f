-- The outbox relay claims a batch of unsent rows by leasing them (leaseuntil) in one
-- autocommit statement, publishes them, then marks them sent in another
-- (global_utils/messaging/outbox.py): no transaction is held open while JetStream answers.
-- A lease that runs out (the relay stopped between its claim and its mark) lets any relay
-- claim the rows again; JetStream and the audit table's unique key drop the copy. NULL: not
-- leased. The runtime role's table grants (0002) cover it.
ALTER TABLE audit_outbox ADD COLUMN IF NOT EXISTS leaseuntil timestamptz;
-- Room in each page for the lease's new row version: the claim then updates in place (a
-- heap-only update, no index entries): PostgreSQL spent 21.5-24 µs per relayed event without
-- the room, 15-16 with it (11.5-12 before the lease; make bench-audit). Rows written from
-- now on get the room; the outbox is purged of sent rows within the hour.
ALTER TABLE audit_outbox SET (fillfactor = 50);
