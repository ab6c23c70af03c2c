"""The benchmark suite's quick mode: it runs and reports every figure (no thresholds asserted)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

FIGURES = {
    "A.async",
    "A.sync_inline",
    "A.sync_thread",
    "E.0",
    "E.1",
    "E.5",
    "E.first",
    "E.each",
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
    "F.import",
    "F.providers",
    "F.decorate",
}


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_quick_mode_measures_and_reports_every_figure(tmp_path: Path) -> None:
    """`python -m benchmarks --quick` prints and writes every figure of sections A to F, each a finite number."""
    output = tmp_path / "quick.json"
    done = _run("-m", "benchmarks", "--quick", "--output", str(output))
    assert done.returncode == 0, done.stderr
    report = json.loads(output.read_text())
    figures = {f["key"]: f for f in report["figures"]}
    assert set(figures) == FIGURES
    for figure in figures.values():
        assert math.isfinite(figure["value"]), figure
        assert figure["floor"] is None or math.isfinite(figure["floor"]), figure
        assert figure["met"] is None or isinstance(figure["met"], bool), figure
    assert report["mode"] == "quick"
    assert report["machine"]["python"]
    for key in FIGURES:
        assert key in done.stdout


def test_run_py_works_as_a_script_and_runs_only_the_named_sections(tmp_path: Path) -> None:
    """`python benchmarks/run.py --only B` runs as a plain script and reports section B alone."""
    output = tmp_path / "b.json"
    done = _run("benchmarks/run.py", "--quick", "--only", "B", "--output", str(output))
    assert done.returncode == 0, done.stderr
    keys = [f["key"] for f in json.loads(output.read_text())["figures"]]
    assert keys == ["B.runs"]
