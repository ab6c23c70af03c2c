"""Durable approvals with DBOS messages: a workflow waits in `DBOS.recv_async`, another process decides.

The workflow (`approval_flow` in `durable._dbos_app`) runs a step, publishes the pending
call with `DBOS.set_event_async`, then waits with `DBOS.recv_async(topic, timeout)`. The
decision comes from another process through `DBOSClient.send`. Pinned here: the decision
reaches a live waiting process; it also reaches a workflow whose process died while
waiting (the message is stored, and the next process of the same executor id resumes the
wait and receives it); the steps before the wait do not run again; the wait's timeout is
a durable deadline, recorded once. PostgreSQL system database (the session cluster).
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from ._support import APPROVAL_TOPIC, PENDING_EVENT, app_env, client, read_steps, result_of, run_app, start_app


def _wait_for(condition: object, timeout: float = 30) -> None:
    """Poll `condition()` until it is true; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.05)


def _finish(process: subprocess.Popen[str]) -> subprocess.CompletedProcess[str]:
    """Wait for a background application process and return it as a finished one."""
    stdout, stderr = process.communicate(timeout=60)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def test_a_decision_sent_from_another_process_resumes_the_waiting_workflow(
    postgres_database: str, tmp_path: Path
) -> None:
    """The live workflow publishes its pending call; a client in another process approves; the tool step runs once."""
    log = tmp_path / "steps.log"
    process = start_app("run", "--db", postgres_database, "--executor", "e1", "--workflow", "approval_flow",
                        "--workflow-id", "a", env=app_env(log))  # fmt: skip
    try:
        _wait_for(lambda: log.exists())
        dbos = client(postgres_database)
        try:
            assert dbos.get_event("a", PENDING_EVENT, timeout_seconds=30) == {"tool_name": "refund", "call_id": "a:1"}
            dbos.send("a", {"approved": True, "by": "alice"}, topic=APPROVAL_TOPIC)
            assert result_of(_finish(process)) == "approved by alice"
            assert dbos.retrieve_workflow("a").get_status().status == "SUCCESS"
        finally:
            dbos.destroy()
    finally:
        process.kill()
        process.wait()
    assert [r.step for r in read_steps(log)] == [0, 1]


def test_a_rejection_skips_the_tool_step(postgres_database: str, tmp_path: Path) -> None:
    """A rejection sent to the waiting workflow ends it without running the tool step."""
    log = tmp_path / "steps.log"
    process = start_app("run", "--db", postgres_database, "--executor", "e1", "--workflow", "approval_flow",
                        "--workflow-id", "r", env=app_env(log))  # fmt: skip
    try:
        dbos = client(postgres_database)
        try:
            _wait_for(lambda: log.exists())
            assert dbos.get_event("r", PENDING_EVENT, timeout_seconds=30) is not None
            dbos.send("r", {"approved": False, "by": "bob"}, topic=APPROVAL_TOPIC)
            assert result_of(_finish(process)) == "rejected by bob"
        finally:
            dbos.destroy()
    finally:
        process.kill()
        process.wait()
    assert [r.step for r in read_steps(log)] == [0]


def test_a_decision_sent_while_no_process_runs_is_received_after_recovery(
    postgres_database: str, tmp_path: Path
) -> None:
    """The process dies while waiting; the decision is sent to the PENDING workflow; the next process resumes it."""
    log = tmp_path / "steps.log"
    died = run_app("run", "--db", postgres_database, "--executor", "e1", "--workflow", "approval_flow",
                   "--workflow-id", "k", env=app_env(log, COGENT_KILL_AT_WAIT="1"))  # fmt: skip
    assert died.returncode == -9
    dbos = client(postgres_database)
    try:
        assert dbos.retrieve_workflow("k").get_status().status == "PENDING"
        assert dbos.get_event("k", PENDING_EVENT, timeout_seconds=5) == {"tool_name": "refund", "call_id": "k:1"}
        dbos.send("k", {"approved": True, "by": "carol"}, topic=APPROVAL_TOPIC)
        recovered = run_app("recover", "--db", postgres_database, "--executor", "e1", "--workflow-id", "k",
                            env=app_env(log))  # fmt: skip
        assert result_of(recovered) == "approved by carol"
    finally:
        dbos.destroy()
    records = read_steps(log)
    assert [r.step for r in records] == [0, 1]
    assert records[0].pid != records[1].pid


def test_the_wait_timeout_is_a_deadline_recorded_once(postgres_database: str, tmp_path: Path) -> None:
    """Killed mid-wait: the recovered `recv` keeps the first process's deadline (one sleep record) and times out."""
    log = tmp_path / "steps.log"
    process = start_app("run", "--db", postgres_database, "--executor", "e1", "--workflow", "approval_flow",
                        "--workflow-id", "t", env=app_env(log, COGENT_WAIT_SECONDS="2"))  # fmt: skip
    dbos = client(postgres_database)
    try:

        def deadline_records() -> list[object]:
            return [s["output"] for s in dbos.list_workflow_steps("t") if s["function_name"] == "DBOS.sleep"]

        _wait_for(lambda: log.exists() and len(deadline_records()) == 1)
        recorded = deadline_records()
        process.kill()
        process.wait()
        recovered = run_app("recover", "--db", postgres_database, "--executor", "e1", "--workflow-id", "t",
                            env=app_env(log))  # fmt: skip
        assert result_of(recovered) == "timed out"
        assert deadline_records() == recorded
    finally:
        process.kill()
        process.wait()
        dbos.destroy()
