-- What the audit service's runtime role may do, and nothing more (audit/server/repository.py):
-- store events (COPY needs INSERT; asyncpg reads the columns' types with a SELECT) and read
-- them back, never change or remove one; claim a chain's head (FOR UPDATE) and move it; record
-- a rejected message. Operators read audit_rejects with the owner's or their own credential.
GRANT SELECT, INSERT ON audit TO audit_runtime;
GRANT SELECT, UPDATE ON audit_chain_heads TO audit_runtime;
GRANT INSERT ON audit_rejects TO audit_runtime;
GRANT USAGE ON SEQUENCE audit_rejects_id_seq TO audit_runtime;
