"""Turning a results JSON into docs/benchmarks.md and its chart."""
