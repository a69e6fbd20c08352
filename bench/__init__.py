"""Benchmarks of the baike crawler: one command per benchmark, see bench/README.md."""
