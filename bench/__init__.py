"""Hand-run benchmarks; not part of the tests."""
