"""The received audit event: its wire format, its authenticity, the chain of stored rows."""
