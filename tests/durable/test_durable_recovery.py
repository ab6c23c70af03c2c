"""Crash recovery of durable cogent runs: SIGKILL at seeded random steps, resume in a new process.

The application (`durable._cogent_app`, forked by `durable._zygote`) runs a multi-turn case:
tool calls, an exactly-once write, a delegation to a subagent (a child workflow), a call
approved by a checkpointed handler, a second write. Each chain kills the run's process
again and again at seeded random executions (inside a step after its side effect, before
its checkpoint; or right after its checkpoint), starts a new process of the same executor
id each time, and lets the last one finish. Pinned: the final output, usage, trace
(timings aside), context state and application writes equal an uninterrupted run's; every
step ran exactly once, except a step killed before its checkpoint, which ran once more;
the resource factory gave each new process its own connection. SQLite system database.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ._support import Zygote, app_env

KILLS_PER_CHAIN = 10
APP = "durable._cogent_app"


@pytest.fixture(scope="module")
def zygote() -> Iterator[Zygote]:
    """A zygote of the application for this module's tests."""
    forker = Zygote(APP, app_env(Path("/dev/null")))
    yield forker
    forker.close()


def _env(directory: Path, **extra: str) -> dict[str, str]:
    return app_env(directory / "steps.log", COGENT_APP_DB=str(directory / "app.sqlite"), **extra)


def _argv(command: str, directory: Path) -> list[str]:
    return [command, "--db", f"sqlite:///{directory / 'dbos.sqlite'}", "--executor", "e1", "--run-id", "case-1"]


def _executions(directory: Path) -> list[str]:
    """The step executions logged so far, in order, as `<kind> <key>` (factory calls excluded)."""
    lines = (directory / "steps.log").read_text().splitlines()
    return [" ".join(line.split()[:2]) for line in lines if not line.startswith("factory ")]


def _result(done: Any) -> dict[str, Any]:
    assert done.returncode == 0, done.stderr[-3000:]
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


@pytest.fixture(scope="module")
def baseline(zygote: Zygote, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], list[str]]:
    """The summary and the step executions of an uninterrupted run."""
    directory = tmp_path_factory.mktemp("baseline")
    summary = _result(zygote.run(_argv("run", directory), _env(directory), directory / "run"))
    return summary, _executions(directory)


@pytest.mark.parametrize("seed", [20260, 7])
def test_a_run_killed_at_random_steps_finishes_as_an_uninterrupted_run(
    seed: int, zygote: Zygote, baseline: tuple[dict[str, Any], list[str]], tmp_path: Path
) -> None:
    """Ten SIGKILLs at seeded random steps: the run completes with the same result, and no checkpointed step reran."""
    expected, steps = baseline
    rng = random.Random(seed)
    log = tmp_path / "steps.log"
    kills: list[tuple[int, str]] = []
    in_step_kills = 0
    while len(kills) < KILLS_PER_CHAIN:
        done_so_far = len(_executions(tmp_path)) if log.exists() else 0
        left = len(steps) + in_step_kills - done_so_far
        assert left > 0, f"the seed leaves no step to kill at after {kills}"
        later = KILLS_PER_CHAIN - len(kills) - 1  # kills still to place after this one
        at = done_so_far + rng.randint(1, 2 if left - 2 >= later else 1)
        mode = rng.choice(["in", "after"])
        command = "run" if not kills else "recover"
        env = _env(tmp_path, COGENT_KILL_AT=str(at), COGENT_KILL_MODE=mode)
        died = zygote.run(_argv(command, tmp_path), env, tmp_path / f"p{len(kills)}")
        assert died.returncode == -9, f"kill at {at} ({mode}) did not happen: {died.stderr[-2000:]}"
        kills.append((at, mode))
        in_step_kills += mode == "in"
    final = _result(zygote.run(_argv("recover", tmp_path), _env(tmp_path), tmp_path / "final"))
    print(f"seed {seed}: kill points (execution, mode) {kills}")

    assert {mode for _, mode in kills} == {"in", "after"}
    assert final == expected
    executions = _executions(tmp_path)
    counts = Counter(executions)
    rerun = Counter(executions[at - 1] for at, mode in kills if mode == "in")
    assert set(counts) == set(steps)
    assert counts == Counter({step: 1 + rerun[step] for step in steps})
    factories = [line for line in log.read_text().splitlines() if line.startswith("factory ")]
    # Every process but the first (which ran with the caller's own connection) made a fresh one.
    assert len({line.split()[2] for line in factories}) == KILLS_PER_CHAIN
    assert all(line.split()[1] == "u-7" for line in factories)  # from the restored state
