-- Tracing (OpenTelemetry): the W3C traceparent of the change's trace, stored with its outbox
-- rows in the change's transaction and published with the event (global_utils/messaging/outbox.py);
-- NULL when the service does not trace. The runtime role's table grants (0002) cover it.
ALTER TABLE audit_outbox ADD COLUMN IF NOT EXISTS traceparent text;
