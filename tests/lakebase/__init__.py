"""Tests of the Lakebase path against a stand-in workspace and a real local Postgres."""
