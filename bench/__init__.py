"""Benchmarks: they print figures and write bench/results/*.md|json; no test asserts on time."""
