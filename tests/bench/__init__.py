"""Tests of the benchmarks tools (the parts that must hold, not their figures)."""
