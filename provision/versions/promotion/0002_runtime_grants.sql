-- What the promotion service's runtime role may do, and nothing more: the statements of
-- promotion/server/repository.py (a header is updated and locked FOR UPDATE; its lines are
-- only ever deleted and inserted again) and of the outbox and its relay
-- (global_utils/messaging/outbox.py). next_id() draws from global_id_sequence with the caller's rights.
GRANT SELECT, INSERT, UPDATE, DELETE ON promotion, audit_outbox TO promotion_runtime;
GRANT SELECT, INSERT, DELETE ON promotion_product, promotion_discount TO promotion_runtime;
GRANT USAGE ON SEQUENCE global_id_sequence TO promotion_runtime;
