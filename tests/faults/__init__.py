"""Fault injection suite (make test-faults): not part of make test. (gRPC's fork handlers are
turned off for every test session in tests/conftest.py: this suite forks the most.)"""
