"""Helpers for the durable tests: run the subprocess DBOS application, read what its steps recorded."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dbos import DBOSClient, DBOSPortableJSONSerializer

APP_NAME = "cogent-durable-tests"
"""The application's DBOS name (the client must use it too)."""
APP_VERSION = "cogent-durable-tests-v1"
"""The application version every process of the application runs with."""
QUEUE = "runs"
"""The queue workers dequeue from."""
APPROVAL_TOPIC = "approval"
"""The `DBOS.recv` topic an approval decision is sent on."""
PENDING_EVENT = "pending_approval"
"""The event the approval workflow sets when it starts waiting."""

_TESTS_DIR = Path(__file__).resolve().parent.parent
_APP = "durable._dbos_app"


@dataclass(frozen=True)
class StepRecord:
    """One execution of a step, as the subprocess application logged it."""

    workflow_id: str
    step: int
    executor: str
    pid: int
    running: int
    """How many `counted` workflows the process was running at that moment."""


def app_env(log: Path, **variables: str) -> dict[str, str]:
    """Return the environment for an application process that logs its steps to `log` (and imports this cogent)."""
    path = os.pathsep.join(filter(None, [str(_TESTS_DIR.parent), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "COGENT_TEST_LOG": str(log), "PYTHONPATH": path, **variables}


def run_app(*args: str, env: dict[str, str], timeout: float = 60, app: str = _APP) -> subprocess.CompletedProcess[str]:
    """Run the application module `app` with `args` to completion (or to its death) and return the finished process."""
    return subprocess.run(
        [sys.executable, "-m", app, *args], cwd=_TESTS_DIR, env=env, capture_output=True, text=True, timeout=timeout
    )


def start_app(*args: str, env: dict[str, str], app: str = _APP) -> subprocess.Popen[str]:
    """Start the application module `app` with `args` in the background, its stdin and stdout piped."""
    return subprocess.Popen(
        [sys.executable, "-m", app, *args],
        cwd=_TESTS_DIR,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def result_of(done: subprocess.CompletedProcess[str]) -> Any:
    """Return the JSON result a finished application printed, failing with its stderr if it did not succeed."""
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def read_steps(log: Path) -> list[StepRecord]:
    """Return the step executions recorded in `log`, in order (reaper lines excluded)."""
    if not log.exists():
        return []
    records = []
    for line in log.read_text().splitlines():
        if line.startswith("reaped "):
            continue
        workflow_id, step, executor, pid, running = line.split()
        records.append(StepRecord(workflow_id, int(step), executor, int(pid), int(running)))
    return records


def client(url: str) -> DBOSClient:
    """Return a DBOS client for the application's system database at `url` (caller destroys it)."""
    return DBOSClient(system_database_url=url, serializer=DBOSPortableJSONSerializer(), application_name=APP_NAME)


class Zygote:
    """Runs application commands as children forked by `durable._zygote` (see its docs), one at a time.

    Args:
        module: The application module, e.g. `durable._cogent_app`.
        env: The environment of the zygote itself (imports happen there).
    """

    def __init__(self, module: str, env: dict[str, str]) -> None:
        self._process = subprocess.Popen(
            [sys.executable, "-m", "durable._zygote", module],
            cwd=_TESTS_DIR,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self._lines: queue.Queue[dict[str, Any]] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self._child: int | None = None

    def _read(self) -> None:
        assert self._process.stdout is not None
        for line in self._process.stdout:
            self._lines.put(json.loads(line))

    def start(self, argv: Sequence[str], env: dict[str, str], outputs: Path) -> int:
        """Fork a child running `argv` with `env`; its stdout and stderr go to `outputs`.out/.err. Return its pid."""
        assert self._child is None, "one command at a time"
        assert self._process.stdin is not None
        command = {"argv": list(argv), "env": env, "stdout": f"{outputs}.out", "stderr": f"{outputs}.err"}
        self._process.stdin.write(json.dumps(command) + "\n")
        self._process.stdin.flush()
        self._child = int(self._lines.get(timeout=30)["pid"])
        self._outputs = outputs
        return self._child

    def wait(self, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Wait for the running child; return it as a finished process (returncode -9 when killed).

        Raises:
            queue.Empty: If it does not end within `timeout` seconds (it is killed).
        """
        finished = self.poll(timeout)
        if finished is None:
            self.kill()
            raise queue.Empty(f"the child did not end within {timeout} s")
        return finished

    def poll(self, timeout: float) -> subprocess.CompletedProcess[str] | None:
        """Return the running child as a finished process if it ends within `timeout` seconds, else `None`."""
        assert self._child is not None
        try:
            returncode = int(self._lines.get(timeout=timeout)["returncode"])
        except queue.Empty:
            return None
        self._child = None
        out, err = (Path(f"{self._outputs}.{kind}").read_text() for kind in ("out", "err"))
        return subprocess.CompletedProcess([], returncode, out, err)

    def kill(self) -> subprocess.CompletedProcess[str]:
        """SIGKILL the running child and return it as a finished process."""
        assert self._child is not None
        os.kill(self._child, signal.SIGKILL)
        finished = self.poll(30)
        assert finished is not None
        return finished

    def run(
        self, argv: Sequence[str], env: dict[str, str], outputs: Path, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        """Run `argv` in a forked child to its end (or death)."""
        self.start(argv, env, outputs)
        return self.wait(timeout)

    def close(self) -> None:
        """Kill a child still running, then stop the zygote."""
        if self._child is not None:
            self.kill()
        assert self._process.stdin is not None
        self._process.stdin.close()
        self._process.wait(timeout=30)


class CogentApp:
    """The files of one run of `durable._cogent_app` in `directory`: its step log, its own database, DBOS's.

    Args:
        directory: A fresh directory.
        database_url: The DBOS system database (default: a SQLite file in `directory`).
    """

    def __init__(self, directory: Path, database_url: str | None = None) -> None:
        self.directory = directory
        self.log = directory / "steps.log"
        self.database_url = database_url or f"sqlite:///{directory / 'dbos.sqlite'}"

    def env(self, **variables: str) -> dict[str, str]:
        """The environment of a process of this run."""
        return app_env(self.log, COGENT_APP_DB=str(self.directory / "app.sqlite"), **variables)

    def argv(self, command: str, run_id: str = "case-1") -> list[str]:
        """The command line of a process of this run (executor `e1`)."""
        return [command, "--db", self.database_url, "--executor", "e1", "--run-id", run_id]

    def executions(self) -> list[str]:
        """The step executions logged so far, in order, as `<kind> <key>` (resource factory calls excluded)."""
        if not self.log.exists():
            return []
        lines = self.log.read_text().splitlines()
        return [" ".join(line.split()[:2]) for line in lines if not line.startswith("factory ")]
