"""NATS: the broker connection and the transactional outbox relay."""
