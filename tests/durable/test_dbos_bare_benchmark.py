"""The DBOS bare-cost benchmark runs in quick mode and reports every figure for both databases."""

from __future__ import annotations

import math

import pytest

from benchmarks import dbos_bare

FIGURES = {"empty_workflow_ms", "workflow_ms", "step_us", "step_cpu_us", "runs_per_s"}


def test_quick_mode_reports_every_figure(postgres_database: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """`run(quick=True)` returns the step count and five positive, finite figures per database."""
    monkeypatch.setenv("COGENT_BENCH_POSTGRES_URL", postgres_database)
    figures = dbos_bare.run(quick=True)
    assert set(figures) == {"steps"} | {f"{db}.{name}" for db in ("sqlite", "postgres") for name in FIGURES}
    assert figures["steps"] == 20
    for name, value in figures.items():
        assert math.isfinite(value) and value > 0, name
