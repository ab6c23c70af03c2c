"""What DBOS itself costs, before cogent adds anything: bare async steps and workflows, in-process.

`run(quick)` launches DBOS with the configuration the durable runner will use (portable
JSON serializer, fixed application version) on a SQLite system database in a temp dir,
then, when PostgreSQL is available, on PostgreSQL, and measures:

- `<db>.empty_workflow_ms`: one workflow with no step (start, record, finish);
- `<db>.workflow_ms`: one workflow of `steps` no-op async steps;
- `<db>.step_us`: DBOS's cost per bare async step, `(workflow_ms - empty_workflow_ms) / steps`;
- `<db>.step_cpu_us`: the same in CPU time of this process (all its threads; the
  database server's own work excluded), less sensitive to a busy machine;
- `<db>.runs_per_s`: 2-step workflows run one after the other, per second.

Each figure is the median of several repeats after a warm-up. PostgreSQL comes from
`COGENT_BENCH_POSTGRES_URL` if set (its database is used as is), else from a throwaway
cluster started with the tests' helper (`tests/durable/_postgres.py`) when PostgreSQL 15
is installed; without either, the PostgreSQL figures are left out. Run it alone with
`python -m benchmarks.dbos_bare [--quick]`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from dbos import DBOS, DBOSPortableJSONSerializer, SetWorkflowID

__all__ = ["postgres_url", "run"]

_TESTS_DIR = Path(__file__).resolve().parent.parent / "tests"


@DBOS.step(name="bench.noop")
async def noop() -> None:
    """A step that does nothing: what is measured is DBOS's checkpointing around it."""


@DBOS.workflow(name="bench.steps")
async def steps_workflow(steps: int) -> int:
    """Run `steps` no-op steps in sequence."""
    for _ in range(steps):
        await noop()
    return steps


async def _time_workflow(steps: int) -> tuple[float, float]:
    """Run one workflow of `steps` steps under a fresh id; return its wall and process CPU times in seconds."""
    started, cpu = time.perf_counter(), time.process_time()
    with SetWorkflowID(uuid.uuid4().hex):
        await steps_workflow(steps)
    return time.perf_counter() - started, time.process_time() - cpu


async def _measure(prefix: str, *, steps: int, repeats: int, runs: int) -> dict[str, float]:
    await _time_workflow(steps)  # warm-up: first-use costs (prepared statements, imports)
    empty = [await _time_workflow(0) for _ in range(repeats)]
    full = [await _time_workflow(steps) for _ in range(repeats)]
    wall_empty, wall_full = (statistics.median(t[0] for t in times) for times in (empty, full))
    cpu_empty, cpu_full = (statistics.median(t[1] for t in times) for times in (empty, full))
    rates = []
    for _ in range(repeats):
        started = time.perf_counter()
        for _ in range(runs):
            await _time_workflow(2)
        rates.append(runs / (time.perf_counter() - started))
    return {
        f"{prefix}.empty_workflow_ms": wall_empty * 1e3,
        f"{prefix}.workflow_ms": wall_full * 1e3,
        f"{prefix}.step_us": (wall_full - wall_empty) / steps * 1e6,
        f"{prefix}.step_cpu_us": (cpu_full - cpu_empty) / steps * 1e6,
        f"{prefix}.runs_per_s": statistics.median(rates),
    }


def _launched_measure(url: str, prefix: str, *, quick: bool) -> dict[str, float]:
    DBOS(
        config={
            "name": "cogent-bench",
            "system_database_url": url,
            "application_version": "cogent-bench",
            "serializer": DBOSPortableJSONSerializer(),
            "log_level": "WARNING",
            "notification_listener_polling_interval_sec": 0.05,
        }
    )
    DBOS.launch()
    try:
        counts = {"steps": 20, "repeats": 3, "runs": 20} if quick else {"steps": 200, "repeats": 5, "runs": 200}
        return asyncio.run(_measure(prefix, **counts))
    finally:
        DBOS.destroy()


@contextlib.contextmanager
def postgres_url() -> Iterator[str | None]:
    """Yield a PostgreSQL URL (from the environment or a throwaway cluster), or None without PostgreSQL."""
    configured = os.environ.get("COGENT_BENCH_POSTGRES_URL")
    if configured:
        yield configured
        return
    sys.path.insert(0, str(_TESTS_DIR))
    try:
        cluster_type = importlib.import_module("durable._postgres").PostgresCluster
    finally:
        sys.path.remove(str(_TESTS_DIR))
    if cluster_type.unavailable_reason() is not None:
        yield None
        return
    with cluster_type() as cluster:
        yield cluster.create_database()


def run(quick: bool) -> dict[str, float]:
    """Measure DBOS's bare costs on SQLite and, when available, PostgreSQL.

    Args:
        quick: Small counts (20 steps per workflow, 3 repeats, 20 runs per rate; a few
            seconds) instead of the full ones (200, 5, 200).

    Returns:
        Figures by name: `steps` (the steps per measured workflow), then for each
        database (`sqlite`, `postgres`) `empty_workflow_ms` and `workflow_ms`
        (milliseconds), `step_us` and `step_cpu_us` (microseconds per step, wall and
        CPU) and `runs_per_s` (2-step workflows per second, sequential).
    """
    figures = {"steps": 20.0 if quick else 200.0}
    with tempfile.TemporaryDirectory(prefix="cogent-bench-") as directory:
        figures |= _launched_measure(f"sqlite:///{directory}/dbos.sqlite", "sqlite", quick=quick)
    with postgres_url() as url:
        if url is not None:
            figures |= _launched_measure(url, "postgres", quick=quick)
    return figures


def main() -> int:
    """Print the figures of `run()`; `--quick` for the small counts."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.dbos_bare", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small counts (a few seconds)")
    figures = run(parser.parse_args().quick)
    for name, value in figures.items():
        print(f"{name:28} {value:12.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
