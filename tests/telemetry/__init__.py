"""Tests for OpenTelemetry instrumentation: span trees, conventions, lineage, secrecy, concurrency."""
