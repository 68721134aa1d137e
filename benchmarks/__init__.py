"""Benchmarks: bitstore side by side with the alternatives (``python -m benchmarks.run``; see README)."""
