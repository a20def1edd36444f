-- Tracing (OpenTelemetry): the trace id (32 hex digits) of the change's trace, read from the
-- event's traceparent header; NULL for an untraced change (and for every row stored before).
-- Not covered by the producer's MAC nor the row hash: it says where to look, proves nothing.
-- The runtime role's table grants (0002: SELECT, INSERT on audit) cover it.
ALTER TABLE audit ADD COLUMN IF NOT EXISTS traceid text;
