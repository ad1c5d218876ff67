"""Fixtures for the integration tests live in tests/conftest.py (shared with tests/security,
so that one pytest session drives one daemon): server, sandbox, other_org, new_org, canary.
Helpers are in tests/warren_harness.py."""
