"""Distribution with DBOS queues on PostgreSQL: two workers share a queue; a killed worker's runs finish elsewhere.

Two worker processes (`durable._dbos_app worker`, executor ids `w1` and `w2`) dequeue
`counted` workflows from the queue `runs` (`worker_concurrency=2`), enqueued by a
`DBOSClient` in the test. Once `w1` is running jobs it is SIGKILLed. DBOS by itself never
moves a dead executor's PENDING workflows (that is DBOS Conductor's job); the workers'
`ExecutorLiveness` thread does: `w2` sees `w1`'s heartbeat stop and calls
`DBOS._recover_pending_workflows(["w1"])`, which puts those workflows back on their queue
(ENQUEUED, owner cleared), and `w2` dequeues them and resumes each from its last
checkpointed step. Pinned: every run completes with the output of an uninterrupted run;
no checkpointed step runs twice; only a step that was in flight on `w1` when it died may
run again on `w2` (at most one per run); neither worker ever runs more than
`worker_concurrency` runs at once.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from ._support import APP_VERSION, QUEUE, app_env, client, read_steps, start_app

JOBS = 6
STEPS = 4

pytestmark = pytest.mark.slow  # about 10 to 15 s: real worker processes, a kill, a heartbeat timeout


def test_a_killed_workers_runs_are_completed_by_the_other_worker(postgres_database: str, tmp_path: Path) -> None:
    """Kill w1 mid-run: w2 reaps it and completes every run; nothing lost, no checkpointed step repeated."""
    log = tmp_path / "steps.log"
    env = app_env(log, COGENT_STEP_SECONDS="0.3")
    workers = {
        name: start_app("worker", "--db", postgres_database, "--executor", name, "--concurrency", "2", env=env)
        for name in ("w1", "w2")
    }
    dbos = client(postgres_database)
    try:
        for worker in workers.values():
            assert worker.stdout is not None and worker.stdout.readline().strip() == "ready"
        handles = [
            dbos.enqueue(
                {
                    "workflow_name": "counted",
                    "queue_name": QUEUE,
                    "workflow_id": f"job-{i}",
                    "app_version": APP_VERSION,
                },
                STEPS,
            )
            for i in range(JOBS)
        ]
        deadline = time.monotonic() + 30
        while not any(r.executor == "w1" for r in read_steps(log)):
            assert time.monotonic() < deadline, "w1 never ran a step"
            time.sleep(0.02)
        workers["w1"].kill()
        workers["w1"].wait()
        killed_at = len(read_steps(log))

        results = {h.get_workflow_id(): h.get_result(polling_interval_sec=0.1) for h in handles}
        statuses = {wid: dbos.retrieve_workflow(wid).get_status() for wid in results}
    finally:
        dbos.destroy()
        for worker in workers.values():
            if worker.poll() is None:
                assert worker.stdin is not None
                worker.stdin.close()
        done = {name: worker.wait(timeout=30) for name, worker in workers.items()}

    assert done == {"w1": -9, "w2": 0}
    for wid, output in results.items():
        assert output == [f'{{"step": {i}, "workflow": "{wid}"}}' for i in range(STEPS)]
        assert statuses[wid].status == "SUCCESS"
    records = read_steps(log)
    w1_runs = {r.workflow_id for r in records if r.executor == "w1"}
    assert w1_runs and any(r.executor == "w2" for r in records)
    assert all(r.executor == "w2" for r in records[killed_at:])
    assert {statuses[wid].executor_id for wid in w1_runs} == {"w2"}
    reaped = [line for line in log.read_text().splitlines() if line.startswith("reaped ")]
    assert len(reaped) == 1 and reaped[0].startswith("reaped w1 by w2: ")
    assert len(w1_runs) <= int(reaped[0].split()[4]) <= 2  # w1's runs, some maybe before their first step

    executions = Counter((r.workflow_id, r.step) for r in records)
    assert set(executions) == {(f"job-{i}", s) for i in range(JOBS) for s in range(STEPS)}
    repeated = [key for key, count in executions.items() if count > 1]
    assert all(executions[key] == 2 for key in repeated)
    assert len(repeated) <= len(w1_runs) and {wid for wid, _ in repeated} <= w1_runs
    for wid, step in repeated:
        assert [r.executor for r in records if (r.workflow_id, r.step) == (wid, step)] == ["w1", "w2"]
        assert all(r.step < step for r in records if r.workflow_id == wid and r.executor == "w1" and r.step != step)

    most_running: dict[str, int] = defaultdict(int)
    for r in records:
        most_running[r.executor] = max(most_running[r.executor], r.running)
    assert max(most_running.values()) <= 2
