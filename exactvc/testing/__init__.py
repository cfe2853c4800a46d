"""Helpers for tests, the demo and benchmarks (synthetic slides and images)."""
