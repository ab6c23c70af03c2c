"""Reliability and security tests: bad input, faults, load, secrecy and cancellation."""
