"""A throwaway PostgreSQL cluster for tests: initdb in a temp dir, one server on a free loopback port.

`PostgresCluster` runs the binaries of the installed PostgreSQL (`pg_config --bindir`):
`initdb` (trust authentication, user `postgres`), then `pg_ctl start` with the server
listening on 127.0.0.1 only and its unix socket inside the temp dir, so nothing outside
the test can reach it and nothing of it outlives `stop()`. `initdb` refuses to run as
root, so as root every binary runs as the `postgres` user (`runuser -u postgres`), and the
temp dir is handed to that user.

Durability is switched off (`fsync`, `synchronous_commit`, `full_page_writes`): the
cluster is deleted after the tests, so a crash of the machine loses nothing of value.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from types import TracebackType

import psycopg

__all__ = ["PostgresCluster"]

_SERVER_SETTINGS = (
    "-c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off "
    "-c max_connections=300 -c shared_buffers=32MB"
)
_START_ATTEMPTS = 3


class PostgresCluster:
    """A PostgreSQL cluster in a temp dir, serving on a free 127.0.0.1 port until `stop()`.

    Use it as a context manager, or call `start()` and `stop()`; `stop()` always ends the
    server and removes the temp dir, also after a failed `start()`.
    """

    def __init__(self) -> None:
        self.port: int | None = None
        """The server's TCP port (set by `start()`)."""
        self._root: Path | None = None
        self._bindir = Path(_pg_config_bindir())
        self._runas: list[str] = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    @staticmethod
    def unavailable_reason() -> str | None:
        """Return why no cluster can be started on this machine, or `None` when one can."""
        if shutil.which("pg_config") is None:
            return (
                "PostgreSQL is not installed (no pg_config on PATH); install PostgreSQL 15 (apt-get install postgresql)"
            )
        if os.geteuid() == 0:
            if shutil.which("runuser") is None:
                return "running as root without runuser, so initdb (which refuses root) cannot run as postgres"
            try:
                pwd.getpwnam("postgres")
            except KeyError:
                return "running as root and there is no postgres user for initdb (which refuses root) to run as"
        return None

    @property
    def url(self) -> str:
        """The SQLAlchemy/psycopg URL of the `postgres` database (trust auth, user `postgres`)."""
        return self.database_url("postgres")

    @property
    def data_dir(self) -> Path:
        """The cluster's data directory."""
        if self._root is None:
            raise RuntimeError("The cluster is not started; call start() first.")
        return self._root / "data"

    def database_url(self, name: str) -> str:
        """Return the URL of database `name` on this cluster."""
        if self.port is None:
            raise RuntimeError("The cluster is not started; call start() first.")
        return f"postgresql://postgres@127.0.0.1:{self.port}/{name}"

    def start(self) -> None:
        """Create the cluster and start its server; return once it accepts connections.

        Raises:
            RuntimeError: If initdb or the server fails (the message carries their output);
                everything started so far has been stopped and removed by then.
        """
        try:
            self._root = Path(tempfile.mkdtemp(prefix="cogent-pg-"))
            if self._runas:
                entry = pwd.getpwnam("postgres")
                os.chown(self._root, entry.pw_uid, entry.pw_gid)
            self._run(
                "initdb", "-D", str(self.data_dir), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C",
                "--no-sync", "--no-instructions",
            )  # fmt: skip
            self._start_server()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop the server (fast shutdown, then SIGKILL of the postmaster if needed) and delete the temp dir."""
        if self._root is None:
            return
        pid = self._postmaster_pid()
        if pid is not None:
            with contextlib.suppress(subprocess.SubprocessError, RuntimeError):
                self._run("pg_ctl", "-D", str(self.data_dir), "-m", "fast", "-w", "-t", "30", "stop")
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
                _wait_gone(pid)
        shutil.rmtree(self._root, ignore_errors=True)
        self._root = None
        self.port = None

    def create_database(self) -> str:
        """Create a new, empty database and return its URL."""
        name = f"test_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.url, autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return self.database_url(name)

    def drop_database(self, url: str) -> None:
        """Drop the database at `url` (made by `create_database()`), ending its sessions first."""
        name = url.rsplit("/", 1)[1]
        with psycopg.connect(self.url, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def postmaster_pid(self) -> int | None:
        """The server's process id while it runs, else `None`."""
        return self._postmaster_pid() if self._root is not None else None

    def __enter__(self) -> PostgresCluster:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # --- internals ---

    def _start_server(self) -> None:
        assert self._root is not None
        log = self._root / "server.log"
        for attempt in range(_START_ATTEMPTS):
            self.port = _free_port()
            options = f"-p {self.port} -k {self._root} {_SERVER_SETTINGS}"
            try:
                self._run("pg_ctl", "-D", str(self.data_dir), "-l", str(log), "-w", "-t", "60", "-o", options, "start")
            except RuntimeError:
                if attempt == _START_ATTEMPTS - 1:  # a port taken between probe and bind is retried
                    raise RuntimeError(f"PostgreSQL did not start; its log:\n{_tail(log)}") from None
                continue
            with psycopg.connect(self.url, connect_timeout=10) as connection:
                connection.execute("SELECT 1")
            return

    def _run(self, program: str, *args: str) -> None:
        command = [*self._runas, str(self._bindir / program), *args]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False, cwd=self._root)
        if done.returncode != 0:
            raise RuntimeError(f"{program} failed ({done.returncode}): {done.stdout}{done.stderr}")

    def _postmaster_pid(self) -> int | None:
        try:
            first_line = (self.data_dir / "postmaster.pid").read_text().split("\n", 1)[0]
        except (FileNotFoundError, PermissionError):
            return None
        pid = int(first_line)
        return pid if _alive(pid) else None


def _pg_config_bindir() -> str:
    return subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True, check=True).stdout.strip()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _alive(pid: int) -> bool:
    """Whether process `pid` exists and is not a zombie (an exited process not yet reaped by its parent)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    except OSError:  # no /proc: ask the kernel
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _wait_gone(pid: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
