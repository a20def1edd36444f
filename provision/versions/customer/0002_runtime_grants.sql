-- What the customer service's runtime role may do, and nothing more: the statements of
-- customer/server/repository.py and of the outbox and its relay (global_utils/messaging/outbox.py).
-- next_id() draws from global_id_sequence with the caller's rights.
GRANT SELECT, INSERT, UPDATE, DELETE ON customer, audit_outbox TO customer_runtime;
GRANT USAGE ON SEQUENCE global_id_sequence TO customer_runtime;
-- It may read which migrations are applied (its pods wait for the newest one, python -m
-- provision.wait), and change none of them.
GRANT SELECT ON schema_migrations TO customer_runtime;
