"""Programs the tests start as separate OS processes (crash, resume, concurrency)."""
