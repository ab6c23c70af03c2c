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

import random
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from ._support import CogentApp, Zygote, result_of

KILLS_PER_CHAIN = 10


@pytest.mark.parametrize("seed", [20260, 7])
def test_a_run_killed_at_random_steps_finishes_as_an_uninterrupted_run(
    seed: int, zygote: Zygote, baseline: tuple[dict[str, Any], list[str]], fast_path: Path
) -> None:
    """Ten SIGKILLs at seeded random steps: the run completes with the same result, and no checkpointed step reran."""
    expected, steps = baseline
    rng = random.Random(seed)
    app = CogentApp(fast_path)
    log = app.log
    kills: list[tuple[int, str]] = []
    in_step_kills = 0
    while len(kills) < KILLS_PER_CHAIN:
        done_so_far = len(app.executions())
        left = len(steps) + in_step_kills - done_so_far
        assert left > 0, f"the seed leaves no step to kill at after {kills}"
        later = KILLS_PER_CHAIN - len(kills) - 1  # kills still to place after this one
        at = done_so_far + rng.randint(1, 2 if left - 2 >= later else 1)
        mode = rng.choice(["in", "after"])
        command = "run" if not kills else "recover"
        env = app.env(COGENT_KILL_AT=str(at), COGENT_KILL_MODE=mode)
        died = zygote.run(app.argv(command), env, fast_path / f"p{len(kills)}")
        assert died.returncode == -9, f"kill at {at} ({mode}) did not happen: {died.stderr[-2000:]}"
        kills.append((at, mode))
        in_step_kills += mode == "in"
    final = result_of(zygote.run(app.argv("recover"), app.env(), fast_path / "final"))
    print(f"seed {seed}: kill points (execution, mode) {kills}")

    assert {mode for _, mode in kills} == {"in", "after"}
    assert final == expected
    executions = app.executions()
    counts = Counter(executions)
    rerun = Counter(executions[at - 1] for at, mode in kills if mode == "in")
    assert set(counts) == set(steps)
    assert counts == Counter({step: 1 + rerun[step] for step in steps})
    factories = [line for line in log.read_text().splitlines() if line.startswith("factory ")]
    # Every process but the first (which ran with the caller's own connection) made a fresh one.
    assert len({line.split()[2] for line in factories}) == KILLS_PER_CHAIN
    assert all(line.split()[1] == "u-7" for line in factories)  # from the restored state
