"""Small runtime helpers: backoff, stopping background tasks, time conversions."""
