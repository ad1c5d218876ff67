"""Fixtures for the security tests live in tests/conftest.py (shared with tests/integration):
server, sandbox, other_org, new_org, canary. Helpers are in tests/warren_harness.py."""
