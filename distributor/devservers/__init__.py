"""Servers the demo, the tests and the benchmarks start for themselves, on loopback."""
