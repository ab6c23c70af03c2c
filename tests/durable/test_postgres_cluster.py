"""The PostgreSQL test cluster: it starts, serves on loopback only, and leaves nothing behind."""

from __future__ import annotations

import socket

import psycopg
import pytest

from ._postgres import PostgresCluster

pytestmark = pytest.mark.skipif(
    PostgresCluster.unavailable_reason() is not None, reason="PostgreSQL is not usable here"
)


def _accepts(port: int) -> bool:
    """Whether something accepts TCP connections on 127.0.0.1:`port`."""
    with socket.socket() as probe:
        probe.settimeout(1)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def test_a_cluster_starts_serves_and_is_gone_after_stop() -> None:
    """A started cluster answers psycopg on its URL as user postgres; after stop, no server, no port, no files."""
    cluster = PostgresCluster()
    cluster.start()
    port, data_dir, pid = cluster.port, cluster.data_dir, cluster.postmaster_pid()
    assert port is not None and pid is not None
    assert cluster.url == f"postgresql://postgres@127.0.0.1:{port}/postgres"
    with psycopg.connect(cluster.url) as connection:
        row = connection.execute("SELECT current_user, version(), current_setting('listen_addresses')").fetchone()
    assert row is not None
    assert row[0] == "postgres" and "PostgreSQL 15" in row[1] and row[2] == "127.0.0.1"
    cluster.stop()
    assert not _accepts(port)
    assert not data_dir.exists()
    assert cluster.postmaster_pid() is None
    cluster.stop()  # a second stop is a no-op


def test_a_failing_test_body_still_stops_the_cluster() -> None:
    """Leaving the context manager through an exception stops the server and removes its directory."""
    with pytest.raises(ZeroDivisionError), PostgresCluster() as cluster:
        port, data_dir = cluster.port, cluster.data_dir
        assert port is not None and _accepts(port)
        1 / 0
    assert not _accepts(port)
    assert not data_dir.exists()


def test_fresh_databases_are_isolated_and_dropped(postgres_cluster: PostgresCluster) -> None:
    """Each created database starts empty, and dropping it ends its open sessions."""
    first, second = postgres_cluster.create_database(), postgres_cluster.create_database()
    assert first != second
    with psycopg.connect(first, autocommit=True) as connection:
        connection.execute("CREATE TABLE runs (id int)")
    with psycopg.connect(second) as connection:
        assert connection.execute("SELECT to_regclass('runs')").fetchone() == (None,)
    lingering = psycopg.connect(first)
    postgres_cluster.drop_database(first)
    postgres_cluster.drop_database(second)
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(first, connect_timeout=5)
    with pytest.raises(psycopg.OperationalError):
        lingering.execute("SELECT 1")
    lingering.close()


def test_the_session_fixture_yields_the_postgres_url(postgres_url: str) -> None:
    """The `postgres_url` fixture is a trust-auth URL on 127.0.0.1 that accepts connections."""
    assert postgres_url.startswith("postgresql://postgres@127.0.0.1:") and postgres_url.endswith("/postgres")
    with psycopg.connect(postgres_url) as connection:
        assert connection.execute("SELECT 1").fetchone() == (1,)
