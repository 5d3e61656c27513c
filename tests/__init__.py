"""Test suite: every test that touches storage runs on a real embedded Postgres."""
