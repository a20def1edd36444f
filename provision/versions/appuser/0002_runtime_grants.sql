-- What the user service's runtime role may do, and nothing more: the statements of
-- user/server/repository.py (users, login throttle, refresh tokens) and of the outbox and its
-- relay (global_utils/messaging/outbox.py). SELECT ... FOR UPDATE needs UPDATE; next_id() draws from
-- global_id_sequence with the caller's rights. The role was made by the provisioner's roles
-- step (provision/databases.py); the owner (who runs this) grants on its own tables.
GRANT SELECT, INSERT, UPDATE, DELETE ON appuser, login_throttle, refresh_token, audit_outbox
    TO appuser_runtime;
GRANT USAGE ON SEQUENCE global_id_sequence TO appuser_runtime;
