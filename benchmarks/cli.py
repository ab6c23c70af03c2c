"""`python -m benchmarks`: run the selected groups with pyperf, print the table, write the JSON."""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import pyperf  # type: ignore[import-untyped]

from .registry import Config, Figure, Group, Skipped, Times, Timing, load_groups, select_groups

__all__ = ["machine", "main", "table"]

ROOT = Path(__file__).resolve().parent.parent
"""The repository root: worker processes import `benchmarks` and `cogent` from here."""
RESULTS_DIR = Path(__file__).resolve().parent / "results"
"""Where the JSON results go by default (git-ignored)."""
FULL = {"processes": 10, "values": 3, "warmups": 1, "min_time": 0.1}
"""pyperf's settings in full mode: 10 worker processes per timing (plus one that calibrates
the loops), 3 values of at least 0.1 s each after 1 warm-up value."""
QUICK = ["--in-process", "--processes", "1", "--values", "1", "--warmups", "1", "--min-time", "0.01"]
"""pyperf's options in quick mode: one value of at least 10 ms per timing, in this process."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Measure what cogent costs on top of the work itself, next to floors measured in the same run.",
        epilog="Any other option goes to pyperf's Runner: --fast, --rigorous, -p N, -v, --affinity CPUS, --profile "
        "FILE, ... (python -m pyperf --help lists them).",
        allow_abbrev=False,
    )
    parser.add_argument("--quick", action="store_true", help="a few seconds, in one process, as CI runs it")
    parser.add_argument("--only", metavar="KEYS", help="comma-separated groups to run, e.g. A,E (default: all)")
    parser.add_argument("--backend", choices=("asyncio", "trio"), default="asyncio", help="the anyio backend")
    parser.add_argument("-o", "--output", type=Path, help="the JSON file to write (default: under benchmarks/results/)")
    parser.add_argument("--list", action="store_true", help="list the groups and exit")
    return parser


def _unique_timings(groups: Sequence[Group], config: Config) -> list[Timing]:
    """Every selected group's timings in order; a name already seen is the same measurement, kept once."""
    timings: dict[str, Timing] = {}
    for group in groups:
        for timing in group.timings(config):
            timings.setdefault(timing.name, timing)
    return list(timings.values())


def _format(value: float | None, unit: str) -> str:
    if value is None:
        return ""
    if unit == "count":
        return f"{value:.0f}"
    if unit == "runs/s":
        return f"{value:,.0f} runs/s"
    if unit == "x":
        return f"{value:.2f}x"
    if unit == "s":
        return f"{value:.3f} s"
    return f"{value:,.2f} {unit.replace('us', 'µs')}"


def table(figures: Sequence[Figure]) -> str:
    """Render the figures as a Markdown table.

    Args:
        figures: The rows.

    Returns:
        The table: figure, cogent (± median absolute deviation), floor, ratio, target, status.
    """
    rows = [("figure", "cogent", "floor", "ratio", "target", "status")]
    for f in figures:
        value = _format(f.value, f.unit)
        if f.mad is not None:
            value += f" ± {_format(f.mad, f.unit).split(' ')[0]}"
        status = "" if f.met is None else ("met" if f.met else "MISSED")
        ratio = "" if f.ratio is None else f"{f.ratio:.2f}x"
        rows.append((f"{f.key} {f.label}", value, _format(f.floor, f.unit), ratio, f.target or "", status))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["| " + " | ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)) + " |" for r in rows]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def _version(dist: str) -> str:
    try:
        return version(dist)
    except PackageNotFoundError:
        return "unknown"


def _commit() -> str | None:
    try:
        done = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return done.stdout.strip()


def machine() -> dict[str, Any]:
    """Describe the machine and the versions the figures were measured with."""
    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu or "unknown",
        "cpus": os.cpu_count(),
        "system": platform.platform(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        **{dist: _version(dist) for dist in ("pydantic", "anyio", "trio", "pyperf", "cogent-context")},
        "commit": _commit(),
    }


def _list(groups: Sequence[Group]) -> None:
    for group in groups:
        missing = group.missing()
        state = f"  (skipped here: needs {', '.join(missing)})" if missing else ""
        print(f"{group.key}  {group.title}{state}")


def _worker_args(config: Config, groups: Sequence[Group]) -> Callable[[list[str], object], None]:
    """pyperf's `add_cmdline_args`: a worker runs the same groups on the same backend."""
    args = ["--backend", config.backend, "--only", ",".join(g.key for g in groups)]

    def add(cmd: list[str], _: object) -> None:
        cmd.extend(args)

    return add


def main(argv: list[str] | None = None) -> int:
    """Run the suite; print the table; write the JSON.

    In a pyperf worker process (started by this function in another process), run the one
    timing pyperf asks for and return.

    Args:
        argv: The command line without the program name (default: `sys.argv[1:]`).

    Returns:
        The process exit code: 0, also when targets are missed (they are reported).
    """
    parser = _parser()
    args, pyperf_args = parser.parse_known_args(argv)
    groups = load_groups()
    if args.list:
        _list(groups)
        return 0
    try:
        selected, skipped = select_groups(groups, args.only)
    except ValueError as exc:
        parser.error(str(exc))
    config = Config(quick=args.quick, backend=args.backend)
    # Workers run `python -m benchmarks` and must import this tree's `benchmarks` and `cogent`.
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    runner = pyperf.Runner(
        **FULL,
        program_args=("-m", "benchmarks"),
        add_cmdline_args=_worker_args(config, selected),
        metadata={"cogent_backend": config.backend},
    )
    runner.parse_args([*(QUICK if args.quick else []), *pyperf_args])
    started, load_before = time.perf_counter(), os.getloadavg()
    measured: dict[str, Any] = {}
    for timing in _unique_timings(selected, config):
        bench = runner.bench_time_func(timing.name, timing.time)
        if bench is not None:
            measured[timing.name] = bench
    if runner.args.worker:
        return 0
    times = Times(measured)
    rows: list[tuple[str, Figure]] = [(g.key, f) for g in selected for f in g.figures(times, config)]
    _report(args, config, rows, skipped, measured, runner, time.perf_counter() - started, load_before)
    return 0


def _report(
    args: argparse.Namespace,
    config: Config,
    rows: list[tuple[str, Figure]],
    skipped: list[Skipped],
    measured: dict[str, Any],
    runner: Any,
    seconds: float,
    load_before: tuple[float, float, float],
) -> None:
    """Print the table and write the JSON report and pyperf's raw results next to it."""
    mode = "quick" if config.quick else "full"
    load_after = os.getloadavg()
    stamp = datetime.now(UTC)
    output: Path = args.output or RESULTS_DIR / f"{mode}-{config.backend}-{stamp:%Y%m%dT%H%M%S}.json"
    raw = output.with_suffix(".pyperf.json")
    pyperf_settings = {k: getattr(runner.args, k) for k in ("processes", "values", "warmups", "min_time", "in_process")}
    info = machine()
    report = {
        "mode": mode,
        "backend": config.backend,
        "date": stamp.isoformat(timespec="seconds"),
        "seconds": round(seconds, 1),
        "load_average": {"before": load_before, "after": load_after},
        "machine": info,
        "pyperf": pyperf_settings,
        "groups": sorted({key for key, _ in rows}),
        "skipped": [asdict(s) for s in skipped],
        "figures": [{"group": key, **asdict(f), "ratio": f.ratio} for key, f in rows],
        "pyperf_results": raw.name if measured else None,
    }
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=2) + "\n")
    if measured:
        pyperf.BenchmarkSuite(list(measured.values())).dump(str(raw), replace=True)
    print()
    print(table([f for _, f in rows]))
    for s in skipped:
        print(f"skipped group {s.key}: {s.reason}")
    print(
        f"\n{mode} mode, {config.backend}, {seconds:.0f} s; pyperf {pyperf_settings}; {info['cpu']} "
        f"({info['cpus']} CPUs); load average {load_before[0]:.2f} before, {load_after[0]:.2f} after; "
        f"written to {output}" + (f" (pyperf's values: {raw.name})" if measured else "")
    )
