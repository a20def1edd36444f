"""Ingest: the consumer loop, a batch (parse, authenticate, store), the JetStream pull client."""
