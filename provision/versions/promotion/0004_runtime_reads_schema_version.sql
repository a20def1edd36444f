-- The runtime role may read which migrations are applied, and change none of them: the
-- service's pods wait as that role (python -m provision.wait, their init container in
-- Kubernetes) until the database has the newest migration their image ships.
GRANT SELECT ON schema_migrations TO promotion_runtime;
