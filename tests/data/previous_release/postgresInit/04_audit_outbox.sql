-- The transactional outbox of every service that produces audit events: a change and its
-- audit event are committed together, and a relay publishes the event to NATS JetStream.
\connect appuser
\ir audit_outbox.psql
\connect promotion
\ir audit_outbox.psql
