"""DBOS crash recovery, for real: a process SIGKILLs itself mid-workflow, a new one finishes the workflow.

These pin what the durable runner relies on (dbos 3.4): a new process launched with the
same executor id and application version resumes every PENDING workflow of that
executor from its last checkpointed step; a checkpointed step never runs again; a step
killed before its checkpoint runs again (steps are at-least-once); a child workflow
started under a deterministic id is resumed, not restarted; a workflow that takes
another path on recovery fails with DBOSUnexpectedStepError. SQLite system database
(a file in the test's temp dir); each process is `durable._dbos_app`.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path

import pytest

from ._support import app_env, client, read_steps, result_of, run_app

STEPS = 5
KILL_POINTS = sorted(random.Random(20240611).sample(range(STEPS - 1), 3))


def _db(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'dbos.sqlite'}"


def _expected(workflow_id: str, steps: int) -> list[str]:
    """The output of an uninterrupted `counted` run (what `side_effect` returns for each step)."""
    return [f'{{"step": {i}, "workflow": "{workflow_id}"}}' for i in range(steps)]


def test_an_uninterrupted_run_gives_the_reference_output(tmp_path: Path) -> None:
    """The reference: one process runs `counted` to the end, each step once, in order."""
    log = tmp_path / "steps.log"
    done = run_app("run", "--db", _db(tmp_path), "--executor", "e1", "--workflow-id", "w", "--steps", str(STEPS),
                   env=app_env(log))  # fmt: skip
    assert result_of(done) == _expected("w", STEPS)
    assert [(r.workflow_id, r.step) for r in read_steps(log)] == [("w", i) for i in range(STEPS)]


@pytest.mark.parametrize("kill_after", KILL_POINTS)
def test_a_killed_workflow_resumes_after_its_last_checkpoint(tmp_path: Path, kill_after: int) -> None:
    """SIGKILL right after step k: the next process (same executor id) runs only steps k+1.., output unchanged."""
    db, log = _db(tmp_path), tmp_path / "steps.log"
    died = run_app("run", "--db", db, "--executor", "e1", "--workflow-id", "w", "--steps", str(STEPS),
                   env=app_env(log, COGENT_KILL_AFTER_STEP=str(kill_after)))  # fmt: skip
    assert died.returncode == -9
    recovered = run_app("recover", "--db", db, "--executor", "e1", "--workflow-id", "w", env=app_env(log))
    assert result_of(recovered) == _expected("w", STEPS)
    records = read_steps(log)
    assert [r.step for r in records] == list(range(STEPS))  # every step exactly once
    first_pid = records[0].pid
    assert [r.step for r in records if r.pid == first_pid] == list(range(kill_after + 1))
    assert {r.pid for r in records[kill_after + 1 :]} != {first_pid}


def test_a_step_killed_before_its_checkpoint_runs_again(tmp_path: Path) -> None:
    """SIGKILL inside step 2 after its side effect: that step runs twice (at-least-once), every other step once."""
    db, log = _db(tmp_path), tmp_path / "steps.log"
    died = run_app("run", "--db", db, "--executor", "e1", "--workflow-id", "w", "--steps", "4",
                   env=app_env(log, COGENT_KILL_IN_STEP="2"))  # fmt: skip
    assert died.returncode == -9
    recovered = run_app("recover", "--db", db, "--executor", "e1", "--workflow-id", "w", env=app_env(log))
    assert result_of(recovered) == _expected("w", 4)
    assert Counter(r.step for r in read_steps(log)) == {0: 1, 1: 1, 2: 2, 3: 1}


def test_a_child_workflow_with_a_derived_id_is_resumed_not_restarted(tmp_path: Path) -> None:
    """Killed inside child `w/call-1`: recovery finishes the child from its checkpoint; the parent waits for it."""
    db, log = _db(tmp_path), tmp_path / "steps.log"
    died = run_app("run", "--db", db, "--executor", "e1", "--workflow", "delegating", "--workflow-id", "w",
                   "--steps", "3", env=app_env(log, COGENT_KILL_IN_STEP="2"))  # fmt: skip
    assert died.returncode == -9
    recovered = run_app("recover", "--db", db, "--executor", "e1", "--workflow-id", "w", env=app_env(log))
    assert result_of(recovered) == [*_expected("w", 1), *_expected("w/call-1", 3), _expected("w", 2)[1]]
    executions = Counter((r.workflow_id, r.step) for r in read_steps(log))
    assert executions == {("w", 0): 1, ("w/call-1", 0): 1, ("w/call-1", 1): 1, ("w/call-1", 2): 2, ("w", 1): 1}
    dbos = client(db)
    try:
        child = dbos.retrieve_workflow("w/call-1").get_status()
        assert child.parent_workflow_id == "w"
        assert [s["child_workflow_id"] for s in dbos.list_workflow_steps("w")] == [None, "w/call-1", "w/call-1", None]
    finally:
        dbos.destroy()


def test_context_state_after_recovery_equals_an_uninterrupted_run(tmp_path: Path) -> None:
    """A context restored from JSON state, changed by steps, killed and resumed ends with the uninterrupted state."""
    db, log = _db(tmp_path), tmp_path / "steps.log"
    reference = result_of(run_app("run", "--db", db, "--executor", "e1", "--workflow", "stateful", "--workflow-id",
                                  "straight", "--steps", "4", env=app_env(log)))  # fmt: skip
    died = run_app("run", "--db", db, "--executor", "e1", "--workflow", "stateful", "--workflow-id", "crashed",
                   "--steps", "4", env=app_env(log, COGENT_KILL_AFTER_STEP="1"))  # fmt: skip
    assert died.returncode == -9
    recovered = run_app("recover", "--db", db, "--executor", "e1", "--workflow-id", "crashed", env=app_env(log))
    assert result_of(recovered) == reference
    state = json.loads(reference)
    assert state["metadata"] == {"cart": "c-9", "items": [0, 1, 2, 3]} and state["retry_count"] == 3
    assert "db" not in state
    assert Counter(r.step for r in read_steps(log) if r.workflow_id == "crashed") == {0: 1, 1: 1, 2: 1, 3: 1}


def test_a_workflow_that_takes_another_path_on_recovery_fails_as_non_deterministic(tmp_path: Path) -> None:
    """Step 1 was `step_a`; recovery code that calls `step_b` first fails the workflow (DBOSUnexpectedStepError)."""
    db, log = _db(tmp_path), tmp_path / "steps.log"
    died = run_app("run", "--db", db, "--executor", "e1", "--workflow", "branching", "--workflow-id", "w",
                   env=app_env(log, COGENT_KILL_AFTER_STEP="0"))  # fmt: skip
    assert died.returncode == -9
    recovered = run_app("recover", "--db", db, "--executor", "e1", "--workflow-id", "w",
                        env=app_env(log, COGENT_BRANCH="b"))  # fmt: skip
    assert recovered.returncode != 0
    assert "DBOSUnexpectedStepError" in recovered.stderr or "deterministic" in recovered.stderr
    dbos = client(db)
    try:
        status = dbos.retrieve_workflow("w").get_status()
        assert status.status == "ERROR"
        assert "step_b was expected" in str(status.error) or "step_a was recorded" in str(status.error)
    finally:
        dbos.destroy()
