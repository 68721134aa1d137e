"""Reliability and security under faults and bad input."""
