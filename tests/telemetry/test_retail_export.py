"""`python -m examples.retail --otel`: the replay's spans in a file, each task's tree equal to its trace."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from examples.retail.harness.cli import main
from examples.retail.harness.database import DatabaseTemplate
from examples.retail.harness.replay import replay_tasks
from examples.retail.harness.tasks import load_plans
from examples.retail.harness.telemetry import check_export, exporting, read_spans

TEMPLATE = DatabaseTemplate()
PLANS = load_plans(TEMPLATE.initial)


def test_the_command_line_exports_and_checks_the_spans(tmp_path: Path) -> None:
    """`--otel FILE --task 16` writes one JSON span per line, all in the task's tree, and prints that tree."""
    path = tmp_path / "spans.jsonl"
    out = io.StringIO()
    assert main(["--task", "16", "--otel", str(path)], out=out) == 0
    text = out.getvalue()
    spans = read_spans(path)
    assert f"OpenTelemetry: {len(spans)} spans of 1 task(s) exported to {path}" in text
    assert "span trees equal to the traces  1/1" in text and "MISMATCH" not in text
    assert f"span tree of task 16 ({len(spans)} spans):\ninvoke_agent front_desk task=" in text
    assert "    invoke_agent pending_orders task=" in text
    assert {s["resource"]["attributes"]["service.name"] for s in spans} == {"retail-desk"}


def test_otel_is_refused_with_a_real_model(capsys: pytest.CaptureFixture[str]) -> None:
    """`--otel` checks the export against the replay, so it is a usage error with `--model`."""
    with pytest.raises(SystemExit) as exited:
        main(["--model", "test", "--otel"])
    assert exited.value.code == 2
    assert "--otel: the export is checked against the replay" in capsys.readouterr().err


@pytest.mark.anyio
async def test_the_check_notices_a_missing_span_a_moved_span_and_a_leaked_user(tmp_path: Path) -> None:
    """check_export fails when a chat span is gone, a span hangs under the wrong parent, or a user id is exported."""
    path = tmp_path / "spans.jsonl"
    plans = [p for p in PLANS if p.task_id in ("16", "17")]
    with exporting(path):
        reports = await replay_tasks(plans, TEMPLATE.fresh)
    spans = read_spans(path)
    assert check_export(spans, reports).problems == []
    assert sum(check_export(spans, reports).spans_per_task.values()) == len(spans)

    chat = next(s for s in spans if s["name"].startswith("chat "))
    assert any("chat spans for" in p for p in check_export([s for s in spans if s is not chat], reports).problems)

    moved = json.loads(json.dumps(spans))
    call = next(s for s in moved if s["attributes"].get("gen_ai.operation.name") == "execute_tool")
    roots = [s for s in moved if s["parent_id"] is None]
    call["parent_id"] = next(r for r in roots if r["context"]["trace_id"] != call["context"]["trace_id"])["context"][
        "span_id"
    ]
    assert len(check_export(moved, reports).problems) >= 2  # missing in one tree, extra in the other

    user = next(r.user_id for r in reports if r.user_id)
    leaked = json.loads(json.dumps(spans))
    leaked[0]["attributes"]["note"] = f"for {user}"
    assert any("authenticated user ids" in p for p in check_export(leaked, reports).problems)
