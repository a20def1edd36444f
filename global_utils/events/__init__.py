"""The audit event: its model, headers and subjects, and its authentication (HMAC)."""
