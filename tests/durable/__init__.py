"""Tests for durable runs: the PostgreSQL test cluster and the DBOS mechanics the integration relies on."""
