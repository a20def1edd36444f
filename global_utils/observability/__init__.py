"""Logs, metrics and tracing of a service process."""
