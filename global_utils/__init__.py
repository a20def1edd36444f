"""Shared plumbing for every service: settings, bootstrap, registry, broker, database, audit."""
