"""Fault injection suite (make test-faults): not part of make test."""

import os

# The suite forks servers (PostgreSQL, NATS, services) from threads while gRPC's own threads
# are busy; gRPC core's fork handlers then run in the forked child and crashed it now and then
# (SIGSEGV before exec). Nothing here forks a process that goes on using gRPC, so they are off.
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")
