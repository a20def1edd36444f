-- The trace id (32 hex digits) of the change's trace, when its producer traced it.
ALTER TABLE audit ADD COLUMN IF NOT EXISTS traceid text;
