"""Development-time machinery: proto generation, embedded PostgreSQL/NATS, local runs."""
