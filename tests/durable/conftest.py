"""Fixtures for durable-run tests: a PostgreSQL cluster per session, a fresh database per test."""

from __future__ import annotations

from collections.abc import Iterator
from importlib.util import find_spec
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from ._postgres import PostgresCluster
    from ._support import Zygote

if find_spec("dbos") is None:  # the `dbos` extra is not installed: nothing here can run
    collect_ignore_glob = ["test_*.py"]


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PostgresCluster]:
    """A PostgreSQL cluster on a free 127.0.0.1 port for the whole session; skips when PostgreSQL is missing."""
    from ._postgres import PostgresCluster

    reason = PostgresCluster.unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    with PostgresCluster() as cluster:
        yield cluster


@pytest.fixture(scope="session")
def postgres_url(postgres_cluster: PostgresCluster) -> str:
    """The URL of the session cluster's `postgres` database: `postgresql://postgres@127.0.0.1:PORT/postgres`."""
    return postgres_cluster.url


@pytest.fixture
def postgres_database(postgres_cluster: PostgresCluster) -> Iterator[str]:
    """The URL of a new, empty database on the session cluster, dropped after the test."""
    url = postgres_cluster.create_database()
    yield url
    postgres_cluster.drop_database(url)


@pytest.fixture(scope="session")
def zygote() -> Iterator[Zygote]:
    """Forks processes of the cogent test application (`durable._cogent_app`) for the whole session."""
    from ._support import Zygote, app_env

    forker = Zygote("durable._cogent_app", app_env(Path("/dev/null")))
    yield forker
    forker.close()


@pytest.fixture(scope="session")
def baseline(zygote: Zygote, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], list[str]]:
    """The summary and the step executions of an uninterrupted run of the test application's case."""
    from ._support import CogentApp, result_of

    app = CogentApp(tmp_path_factory.mktemp("baseline"))
    summary = result_of(zygote.run(app.argv("run"), app.env(), app.directory / "run"))
    return summary, app.executions()
