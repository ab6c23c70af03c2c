"""Distribution: durable runs on a DBOS queue, two `Worker` processes on PostgreSQL, one killed mid-run.

Two worker processes of the test application (`Worker(queue=..., concurrency=2)`, executor
ids `w1` and `w2`, each with its own connections to the application's database) serve the
queue; a client in the test process enqueues six runs of the case (`enqueue(client=...)`).
Once `w1` has made steps in two of them, it is SIGKILLed. `w2`'s liveness thread sees `w1`'s heartbeat
stop, puts its runs back on the queue (`DBOS._recover_pending_workflows`), and finishes them
from their last checkpoints. Pinned: every run completes with the result of an
uninterrupted run; every application write happened exactly once; a step checkpointed by
`w1` never ran again, only a step in flight when `w1` died (at most one per run); no worker
ran more than two runs at once (the queue's limit, enforced by DBOS).
"""

from __future__ import annotations

import inspect
import json
import sqlite3
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import anyio
import pytest
from dbos import DBOSClient, DBOSPortableJSONSerializer

from cogent._context_state import dump_state
from cogent.exceptions import UserError

from ._support import CogentApp, start_app

pytestmark = pytest.mark.anyio

RUNS = 6


@pytest.fixture
def anyio_backend() -> str:
    """Durable runs are asyncio-only (DBOS)."""
    return "asyncio"


def _lines(app: CogentApp) -> list[str]:
    return app.log.read_text().splitlines() if app.log.exists() else []


def _keys_of(app: CogentApp, pid: int) -> list[str]:
    """The keys of the steps process `pid` executed."""
    return [line.split()[1] for line in _lines(app) if line.endswith(f" {pid}") and not line.startswith("factory ")]


def _run_of(key: str) -> str:
    return key.split(":")[0].split("/")[0]


async def test_a_killed_workers_runs_are_finished_by_the_other(
    postgres_database: str, baseline: tuple[dict[str, Any], list[str]], fast_path: Path
) -> None:
    """Kill w1 mid-run: w2 finishes all six runs, nothing lost, no write twice, no checkpointed step rerun."""
    from ._cogent_app import APP_NAME, APP_VERSION, QUEUE, durable, new_context, trace_lines

    app = CogentApp(fast_path, postgres_database)
    env = app.env(COGENT_STEP_SECONDS="0.05")
    workers = {
        name: start_app("worker", "--db", postgres_database, "--executor", name, app="durable._cogent_app", env=env)
        for name in ("w1", "w2")
    }
    client = DBOSClient(
        system_database_url=postgres_database, serializer=DBOSPortableJSONSerializer(), application_name=APP_NAME
    )
    try:
        for worker in workers.values():
            assert worker.stdout is not None and worker.stdout.readline().strip() == "ready"
        run_ids = [
            await durable.enqueue(
                "Refund order o-1",
                queue=QUEUE,
                client=client,
                app_version=APP_VERSION,
                context=new_context(),
                run_id=f"job-{i}",
            )
            for i in range(RUNS)
        ]
        pids = {str(worker.pid): name for name, worker in workers.items()}
        deadline = time.monotonic() + 30
        while len(keys := _keys_of(app, workers["w1"].pid)) < 4 or len({_run_of(key) for key in keys}) < 2:
            assert time.monotonic() < deadline, "w1 never ran two runs"
            await anyio.sleep(0.02)
        workers["w1"].kill()
        workers["w1"].wait()
        results = {run_id: await durable.result(run_id, client=client) for run_id in run_ids}
        statuses = {run_id: await client.retrieve_workflow_async(run_id) for run_id in run_ids}
        executors = {run_id: (await handle.get_status()).executor_id for run_id, handle in statuses.items()}
    finally:
        client.destroy()
        for worker in workers.values():
            if worker.poll() is None:
                assert worker.stdin is not None
                worker.stdin.close()
        exits = {name: worker.wait(timeout=30) for name, worker in workers.items()}
    assert exits == {"w1": -9, "w2": 0}

    expected, steps = baseline
    for run_id, result in results.items():
        same = {
            "output": result.output,
            "trace": [line.replace(run_id, "case-1") for line in trace_lines(result.trace)],
            "state": json.loads(dump_state(result.context)),
        }
        assert same == {name: expected[name] for name in same}
    usages = {(u.requests, u.input_tokens, u.output_tokens, u.tool_calls) for u in (r.usage for r in results.values())}
    assert usages == {tuple(expected["usage"])}

    lines = [line.split() for line in _lines(app) if not line.startswith("factory ")]
    by_w1 = {_run_of(key) for _, key, pid in lines if pids.get(pid) == "w1"}
    assert by_w1 and all(executors[run_id] == "w2" for run_id in by_w1)  # w1's runs were finished by w2
    executions = Counter(key for _, key, _ in lines)
    assert len(executions) == RUNS * len(steps)
    twice = [key for key, count in executions.items() if count > 1]
    assert all(executions[key] == 2 for key in twice)
    assert len(twice) <= len(by_w1) and len({_run_of(key) for key in twice}) == len(twice)
    for key in twice:  # in flight on w1 when it died, then run by w2
        assert [pids.get(pid) for _, k, pid in lines if k == key] == ["w1", "w2"]

    db = sqlite3.connect(app.directory / "app.sqlite")
    try:
        writes = db.execute("SELECT key, kind, value FROM writes").fetchall()
    finally:
        db.close()
    assert len(writes) == RUNS * 3  # two notes and a refund per run, each once (the key is the primary key)
    assert Counter(kind for _, kind, _ in writes) == {"note": RUNS * 2, "refund": RUNS}

    # Runs between their first and last step in one process were running together there.
    last = {(pid, _run_of(key)): i for i, (_, key, pid) in enumerate(lines)}
    active: dict[str, set[str]] = defaultdict(set)
    most: dict[str, int] = defaultdict(int)
    for i, (_, key, pid) in enumerate(lines):
        running = active[pid]
        running.add(_run_of(key))
        most[pid] = max(most[pid], len(running))
        running -= {run for run in running if last[(pid, run)] <= i}
    assert max(most.values()) == 2


def test_the_private_dbos_call_the_worker_relies_on_is_there() -> None:
    """`Worker` moves a dead executor's runs with DBOS 3.4's private `_recover_pending_workflows(executor_ids)`."""
    from dbos import DBOS

    assert list(inspect.signature(DBOS._recover_pending_workflows).parameters) == ["executor_ids"]


def test_worker_misuse_is_refused() -> None:
    """A PostgreSQL worker without its own executor id, or liveness timings that cannot work, are refused."""
    from cogent.durable import Worker, durable_config

    url = "postgresql://postgres@127.0.0.1:1/x"
    with pytest.raises(UserError, match="executor_id"):
        Worker(durable_config("app", url))
    with pytest.raises(UserError, match="dead_after"):
        Worker(durable_config("app", url, executor_id="w1"), heartbeat_interval=5, dead_after=6)
    with pytest.raises(UserError, match="concurrency"):
        Worker(durable_config("app", url, executor_id="w1"), concurrency=0)
    with pytest.raises(UserError, match="system_database_url"):
        Worker({"name": "app"})
