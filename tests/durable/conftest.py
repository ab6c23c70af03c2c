"""Fixtures for durable-run tests: a PostgreSQL cluster per session, a fresh database per test."""

from __future__ import annotations

import os
import shutil
import tempfile
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


_RAM = Path("/dev/shm")


def ram_directory(factory: pytest.TempPathFactory, name: str) -> Path:
    """A new directory in memory (tmpfs) when the machine has one, else in the test's temp dir.

    The durable tests' SQLite databases commit at every step; on tmpfs a commit costs no
    disk flush, and a SIGKILLed process loses nothing there either.
    """
    if _RAM.is_dir() and os.access(_RAM, os.W_OK):
        return Path(tempfile.mkdtemp(prefix=f"cogent-{name}-", dir=_RAM))
    return factory.mktemp(name)


@pytest.fixture
def fast_path(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A fresh directory for a test's databases, in memory when possible (removed after the test)."""
    directory = ram_directory(tmp_path_factory, "test")
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="session")
def zygote() -> Iterator[Zygote]:
    """Forks processes of the cogent test application (`durable._cogent_app`) for the whole session."""
    from ._support import Zygote, app_env

    forker = Zygote("durable._cogent_app", app_env(Path("/dev/null")))
    yield forker
    forker.close()


@pytest.fixture(scope="session")
def baseline(zygote: Zygote, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[dict[str, Any], list[str]]]:
    """The summary and the step executions of an uninterrupted run of the test application's case."""
    from ._support import CogentApp, result_of

    app = CogentApp(ram_directory(tmp_path_factory, "baseline"))
    summary = result_of(zygote.run(app.argv("run"), app.env(), app.directory / "run"))
    yield summary, app.executions()
    shutil.rmtree(app.directory, ignore_errors=True)
