"""Fixtures for the MCP tests: the test server over stdio and over HTTP, what it recorded, leak counters.

The servers live in `tests/mcp_servers/`. The stdio server is started by the code under
test (one subprocess per connection); the HTTP server is started here as a subprocess on
127.0.0.1 (it binds a free port and prints it) and stopped after the tests.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import pytest
import sniffio

from cogent.mcp import MCPServerHTTP, MCPServerStdio

SERVERS = Path(__file__).resolve().parent.parent / "mcp_servers"
STDIO_SCRIPT = str(SERVERS / "stdio_server.py")
HTTP_SCRIPT = str(SERVERS / "http_server.py")
SESSION_PIDS: set[int] = set()
"""Child processes that live for the whole session (the HTTP test server)."""


@dataclass
class Record:
    """What the test server received, read from its record file."""

    path: Path

    def entries(self) -> list[dict[str, Any]]:
        """Every recorded entry, in order."""
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text(encoding="utf-8").splitlines() if line]

    def text(self) -> str:
        """The raw text of the record (everything the server received)."""
        return self.path.read_text(encoding="utf-8") if self.path.exists() else ""

    def calls(self, tool: str | None = None) -> list[dict[str, Any]]:
        """The recorded `tools/call` requests, optionally of one tool."""
        return [
            e
            for e in self.entries()
            if e.get("method") == "tools/call" and (tool is None or e["params"]["name"] == tool)
        ]

    def clear(self) -> None:
        """Forget what was recorded so far."""
        self.path.write_text("", encoding="utf-8")


def child_pids() -> set[int]:
    """The ids of this process's live child processes (zombies excluded)."""
    pids: set[int] = set()
    for task in Path(f"/proc/{os.getpid()}/task").iterdir():
        text = (task / "children").read_text()
        pids.update(int(p) for p in text.split())
    alive = set()
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            continue
        if state != "Z":
            alive.add(pid)
    return alive


def open_sockets() -> int:
    """The number of sockets this process has open."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            count += os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")
        except OSError:
            continue
    return count


def live_tasks() -> int:
    """The number of tasks of the running event loop (asyncio or trio)."""
    if sniffio.current_async_library() == "trio":
        import trio

        def count(task: Any) -> int:
            return 1 + sum(count(t) for n in task.child_nurseries for t in n.child_tasks)

        return count(trio.lowlevel.current_root_task())
    import asyncio

    return len(asyncio.all_tasks())


async def wait_until(condition: Callable[[], bool], *, seconds: float = 10.0) -> None:
    """Wait until `condition()` holds (checked every 20 ms); fail the test after `seconds`.

    The condition is on another process's record file, so there is no event to wait for.
    """
    with anyio.fail_after(seconds):
        while not condition():  # noqa: ASYNC110 - polls a file another process writes
            await anyio.sleep(0.02)


def free_port() -> int:
    """A port of 127.0.0.1 with nothing listening on it (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def record(tmp_path: Path) -> Record:
    """A fresh record file for a stdio server."""
    return Record(tmp_path / "record.jsonl")


@pytest.fixture
def stdio_args(record: Record) -> list[str]:
    """The arguments that start the test server over stdio, recording into `record`."""
    return [STDIO_SCRIPT, str(record.path)]


@pytest.fixture
def stdio_server(stdio_args: list[str]) -> MCPServerStdio:
    """The test server over stdio (started by each connection)."""
    return MCPServerStdio(sys.executable, stdio_args, name="test-stdio")


@dataclass
class HTTPServerProcess:
    """The test server running over streamable HTTP in a subprocess."""

    process: subprocess.Popen[str]
    url: str
    record: Record


@contextmanager
def start_http_server(record_path: Path) -> Iterator[HTTPServerProcess]:
    """Start the HTTP test server in a subprocess on a free port of 127.0.0.1; stop it on exit."""
    record = Record(record_path)
    process = subprocess.Popen([sys.executable, HTTP_SCRIPT, str(record.path)], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        port = int(process.stdout.readline())
        yield HTTPServerProcess(process=process, url=f"http://127.0.0.1:{port}/mcp", record=record)
    finally:
        process.terminate()
        process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()


@pytest.fixture(scope="session")
def http_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HTTPServerProcess]:
    """The HTTP test server, started once for the session."""
    with start_http_server(tmp_path_factory.mktemp("mcp-http") / "record.jsonl") as started:
        SESSION_PIDS.add(started.process.pid)
        yield started


@pytest.fixture
def http(http_process: HTTPServerProcess) -> HTTPServerProcess:
    """The HTTP test server, with its record cleared for this test."""
    http_process.record.clear()
    return http_process


@pytest.fixture
def http_server(http: HTTPServerProcess) -> MCPServerHTTP:
    """The test server over HTTP, with fixed headers."""
    return MCPServerHTTP(http.url, name="test-http")


@pytest.fixture(params=["stdio", "http"])
def transport(request: pytest.FixtureRequest) -> str:
    """Run a test once per transport."""
    return str(request.param)


@dataclass
class Served:
    """A server under test and the record of what it received."""

    server: MCPServerStdio | MCPServerHTTP
    record: Record


@pytest.fixture
def served(transport: str, request: pytest.FixtureRequest) -> Served:
    """The test server over the transport of this test's parameter, with its record."""
    if transport == "stdio":
        return Served(server=request.getfixturevalue("stdio_server"), record=request.getfixturevalue("record"))
    http: HTTPServerProcess = request.getfixturevalue("http")
    return Served(server=request.getfixturevalue("http_server"), record=http.record)


@pytest.fixture(autouse=True)
def no_leaked_subprocess() -> Iterator[None]:
    """Every test leaves no child process of its own running (the session's HTTP server aside)."""
    before = child_pids()
    yield
    leaked = child_pids() - before - SESSION_PIDS
    assert not leaked, f"the test left child processes running: {sorted(leaked)}"
