"""Shared fixtures: every async test runs on asyncio and on trio; a local Chat Completions server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from chat_server import ChatServer


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    """Run each `@pytest.mark.anyio` test once per backend."""
    return str(request.param)


@pytest.fixture
def server() -> Iterator[ChatServer]:
    """A running local Chat Completions server on 127.0.0.1."""
    with ChatServer() as s:
        yield s
