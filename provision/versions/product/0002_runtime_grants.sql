-- What the product service's runtime role may do, and nothing more: the statements of
-- product/server/repository.py and of the outbox and its relay (global_utils/messaging/outbox.py).
-- next_id() draws from global_id_sequence with the caller's rights.
GRANT SELECT, INSERT, UPDATE, DELETE ON product, audit_outbox TO product_runtime;
GRANT USAGE ON SEQUENCE global_id_sequence TO product_runtime;
-- It may read which migrations are applied (its pods wait for the newest one, python -m
-- provision.wait), and change none of them.
GRANT SELECT ON schema_migrations TO product_runtime;
