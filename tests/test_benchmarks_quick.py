"""The benchmark suite: quick mode reports every figure (no thresholds asserted); groups; public API only."""

from __future__ import annotations

import ast
import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.registry import Config, Group, load_groups, select_groups

ROOT = Path(__file__).resolve().parent.parent

FIGURES = {
    "A.async",
    "A.sync_inline",
    "A.sync_thread",
    "A.async_parallel",
    "B.runs",
    "C.wall",
    "C.memory",
    "C.mismatches",
    "D.depth_1",
    "D.depth_4",
    "D.depth_16",
    "D.depth_64",
    "D.linearity",
    "D.work",
    "E.0",
    "E.1",
    "E.5",
    "E.first",
    "E.each",
    "F.import",
    "F.providers",
    "F.decorate",
}
CORE_GROUPS = {"A", "B", "C", "D", "E", "F"}
DURABLE_FIGURES = {"G.sqlite.step", "G.sqlite.step_cpu", "G.sqlite.runs"}
"""Group G's figures in quick mode (PostgreSQL's only with COGENT_BENCH_POSTGRES_URL); it needs the dbos extra."""


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_quick_mode_measures_and_reports_every_figure(tmp_path: Path) -> None:
    """`python -m benchmarks --quick` prints and writes every figure of groups A to F, each a finite number."""
    output = tmp_path / "quick.json"
    done = _run("-m", "benchmarks", "--quick", "--output", str(output))
    assert done.returncode == 0, done.stderr
    report = json.loads(output.read_text())
    figures = {f["key"]: f for f in report["figures"]}
    assert {k for k, f in figures.items() if f["group"] in CORE_GROUPS} == FIGURES
    if importlib.util.find_spec("dbos") is not None:
        assert set(figures) >= DURABLE_FIGURES
    for figure in figures.values():
        assert math.isfinite(figure["value"]), figure
        for field in ("floor", "mad", "ratio"):
            assert figure[field] is None or math.isfinite(figure[field]), figure
        assert figure["met"] is None or isinstance(figure["met"], bool), figure
    assert report["mode"] == "quick"
    assert report["machine"]["python"]
    assert len(report["load_average"]["before"]) == 3
    assert not [s for s in report["skipped"] if s["key"] in CORE_GROUPS]
    assert (tmp_path / report["pyperf_results"]).is_file()
    for key in FIGURES:
        assert key in done.stdout


def test_only_runs_the_named_groups(tmp_path: Path) -> None:
    """`--only b` (case-insensitive) runs group B alone and reports its one figure."""
    output = tmp_path / "b.json"
    done = _run("-m", "benchmarks", "--quick", "--only", "b", "--output", str(output))
    assert done.returncode == 0, done.stderr
    report = json.loads(output.read_text())
    assert [f["key"] for f in report["figures"]] == ["B.runs"]
    assert report["groups"] == ["B"]


def test_only_with_an_unknown_group_fails_with_the_known_ones() -> None:
    """`--only Z` exits with a usage error that lists the groups there are, and measures nothing."""
    done = _run("-m", "benchmarks", "--quick", "--only", "A,Z")
    assert done.returncode == 2
    assert "unknown groups z" in done.stderr
    assert "A, B, C, D, E, F" in done.stderr


def test_a_group_whose_extra_is_missing_is_skipped_with_the_reason() -> None:
    """A selected group that requires an uninstalled module is skipped, naming the module and the install command."""
    optional = Group(
        key="X",
        title="needs an extra",
        timings=lambda config: [],
        figures=lambda times, config: [],
        requires=("cogent_benchmarks_no_such_module",),
        install='pip install "cogent-context[x]"',
    )
    runnable, skipped = select_groups([*load_groups(), optional], "A,x")
    assert [g.key for g in runnable] == ["A"]
    assert [(s.key, s.reason) for s in skipped] == [
        ("X", 'needs cogent_benchmarks_no_such_module; pip install "cogent-context[x]"')
    ]


@pytest.mark.parametrize("only", ["", " , ", "AB"])
def test_only_must_name_groups_by_comma_separated_keys(only: str) -> None:
    """An empty selection or keys run together (`AB`) are refused with a message that shows the syntax."""
    with pytest.raises(ValueError, match=r"e\.g\. --only A,E"):
        select_groups(load_groups(), only)


def test_every_group_declares_uniquely_named_timings() -> None:
    """Within a group, no two timings share a name (a shared name across groups means the same measurement)."""
    config = Config(quick=True, backend="asyncio")
    for group in load_groups():
        names = [t.name for t in group.timings(config)]
        assert len(names) == len(set(names)), group.key


def test_the_benchmarks_use_only_the_public_api() -> None:
    """No benchmark module imports a private cogent module or reads an underscore attribute of another object."""
    for path in sorted((ROOT / "benchmarks").glob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("cogent"):
                assert not any(part.startswith("_") for part in node.module.split(".")), (path.name, node.module)
                assert not any(alias.name.startswith("_") for alias in node.names), (path.name, node.lineno)
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.startswith("cogent"):
                        assert not any(p.startswith("_") for p in alias.name.split(".")), (path.name, alias.name)
            if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.endswith("__"):
                assert isinstance(node.value, ast.Name) and node.value.id == "self", (path.name, node.lineno)
