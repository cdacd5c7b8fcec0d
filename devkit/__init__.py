"""Development helpers shared by the tests, the sandbox and the benchmarks (not shipped)."""
