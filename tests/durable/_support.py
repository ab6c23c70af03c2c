"""Helpers for the durable tests: run the subprocess DBOS application, read what its steps recorded."""

from __future__ import annotations

import json
import os
import subprocess
import sys
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
_APP = [sys.executable, "-m", "durable._dbos_app"]


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


def run_app(*args: str, env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run the application with `args` to completion (or to its death) and return the finished process."""
    return subprocess.run([*_APP, *args], cwd=_TESTS_DIR, env=env, capture_output=True, text=True, timeout=timeout)


def start_app(*args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    """Start the application with `args` in the background, its stdin and stdout piped."""
    return subprocess.Popen(
        [*_APP, *args],
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
