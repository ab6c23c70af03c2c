"""The tau2 retail replay harness: 114 tasks through the desk, every call and final database checked."""

from __future__ import annotations

import dataclasses
import io
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from chat_server import Call, ChatServer, Reply

from examples.retail.desk import FRONT_DESK, OWNER, build_desk
from examples.retail.harness.cli import main
from examples.retail.harness.database import DatabaseTemplate
from examples.retail.harness.replay import (
    CallReport,
    ReplayModel,
    ToolCallRecord,
    replay_models,
    replay_tasks,
    run_task,
    tool_outputs,
)
from examples.retail.harness.tasks import ExpectedCall, TaskPlan, load_plans
from examples.retail.policy import AUTHENTICATED_TOOLS
from examples.retail.store import DATA_DIR
from examples.retail.tools import IDENTIFICATION_TOOLS, WRITE_TOOLS

TASKS: list[dict[str, Any]] = json.loads((DATA_DIR / "tasks.json").read_text(encoding="utf-8"))
EXPECTED: dict[str, Any] = json.loads((DATA_DIR / "expected_outcomes.json").read_text(encoding="utf-8"))
TEMPLATE = DatabaseTemplate()
PLANS = load_plans(TEMPLATE.initial)


def plan_of(task_id: str, plans: tuple[TaskPlan, ...] = PLANS) -> TaskPlan:
    """The plan of one task."""
    return next(plan for plan in plans if plan.task_id == task_id)


def delegating_plan() -> TaskPlan:
    """The first task whose calls involve the front desk and a specialist."""
    return next(p for p in PLANS if len({OWNER[c.name] for c in p.calls}) >= 2)


async def replay(plan: TaskPlan, *, script: TaskPlan | None = None) -> Any:
    """Replay `plan` on a fresh database, the models playing `script` (default: the plan itself)."""
    with TEMPLATE.fresh() as db:
        return await run_task(build_desk(replay_models(script or plan)), plan, db)


@pytest.mark.anyio
async def test_all_tasks_replay_exactly() -> None:
    """Every gold call and every task's final database equal the reference, with tasks run concurrently."""
    reports = await replay_tasks(PLANS, TEMPLATE.fresh)

    assert [r.plan.task_id for r in reports] == list(EXPECTED)
    assert [(r.plan.task_id, r.error) for r in reports if r.error] == []
    assert sum(r.gold_calls_matched for r in reports) == sum(len(v["actions"]) for v in EXPECTED.values()) == 553
    assert [r.final_db_sha256 for r in reports] == [v["final_db_sha256"] for v in EXPECTED.values()]
    assert [r.plan.task_id for r in reports if not r.matched] == []
    assert sum(len(r.identifications) for r in reports) == 45
    writes = [c for r in reports for c in r.calls if c.expected.name in WRITE_TOOLS]
    assert all(c.approved for c in writes)
    assert sum(len(r.approvals) for r in reports) == len(writes)  # each write asked once, nothing else asked
    for r in reports:  # the shared session ends on the first user identified
        identified = [
            c.output for c in r.calls if c.expected.name in IDENTIFICATION_TOOLS and not c.output.startswith("Error: ")
        ]
        assert r.user_id == (identified[0] if identified else None)


def test_plans_follow_tasks_json_and_authenticate_first() -> None:
    """Each plan holds its task's gold actions from tasks.json in order, and an identification precedes user data."""
    for task, plan in zip(TASKS, PLANS, strict=True):
        gold = task["evaluation_criteria"]["actions"]
        assert [(c.call_id, c.name, c.arguments) for c in plan.gold_calls] == [
            (a["action_id"], a["name"], a["arguments"]) for a in gold
        ]
        identified = False
        for call in plan.calls:
            assert identified or call.name not in AUTHENTICATED_TOOLS, call.call_id
            assert call.reference is not None
            identified = identified or (call.name in IDENTIFICATION_TOOLS and call.reference.output[:7] != "Error: ")
    assert sum(not c.gold for p in PLANS for c in p.calls) == 45


def _edited_copy(tmp_path: Path, file: str, task_id: str, edit: Any) -> tuple[TaskPlan, ...]:
    """Plans loaded from a copy of the data where `edit` changed one task of `file`."""
    for name in ("tasks.json", "expected_outcomes.json"):
        shutil.copy(DATA_DIR / name, tmp_path / name)
    data = json.loads((tmp_path / file).read_text(encoding="utf-8"))
    edit(next(task for task in data if task["id"] == task_id) if isinstance(data, list) else data[task_id])
    (tmp_path / file).write_text(json.dumps(data), encoding="utf-8")
    return load_plans(TEMPLATE.initial, tmp_path)


@pytest.mark.anyio
async def test_replay_notices_an_edited_argument_in_tasks_json(tmp_path: Path) -> None:
    """Changing one argument of a gold action in tasks.json makes that call, and its task, mismatch."""
    task_id = delegating_plan().task_id
    action = next(a for a in EXPECTED[task_id]["actions"] if "order_id" in a["arguments"])

    def edit(task: dict[str, Any]) -> None:
        gold = next(a for a in task["evaluation_criteria"]["actions"] if a["action_id"] == action["action_id"])
        gold["arguments"]["order_id"] = "#W0000000"

    report = await replay(plan_of(task_id, _edited_copy(tmp_path, "tasks.json", task_id, edit)))

    mismatched = [c for c in report.calls if not c.matched]
    assert [c.expected.call_id for c in mismatched] == [action["action_id"]]
    assert any(p.startswith("expected_outcomes.json's output is for") for p in mismatched[0].problems)
    assert not report.matched


@pytest.mark.anyio
async def test_replay_notices_a_wrong_reference_output_and_hash(tmp_path: Path) -> None:
    """A reference output or final hash that the run does not reproduce makes the task fail."""
    task_id = delegating_plan().task_id

    def edit(outcome: dict[str, Any]) -> None:
        outcome["actions"][-1]["output"] += " "
        outcome["final_db_sha256"] = "0" * 64

    report = await replay(plan_of(task_id, _edited_copy(tmp_path, "expected_outcomes.json", task_id, edit)))

    assert report.gold_calls_matched == len(report.plan.gold_calls) - 1
    assert "differs from the reference's" in report.calls[-1].problems[0]
    assert not report.db_matched
    assert not report.matched


@pytest.mark.anyio
async def test_replay_notices_a_call_the_desk_changed() -> None:
    """A tool that receives other arguments than tasks.json's, or a call that is not planned, fails the task."""
    plan = delegating_plan()
    changed = dataclasses.replace(plan.calls[-1], arguments={**plan.calls[-1].arguments, "order_id": "#W0000000"})
    extra = ExpectedCall(call_id="extra", name="calculate", arguments={"expression": "1 + 1"}, reference=None)
    script = dataclasses.replace(plan, calls=(extra, *plan.calls[:-1], changed))

    report = await replay(plan, script=script)

    assert report.calls[-1].problems[0].startswith("the tool received ")
    assert "tasks.json says" in report.calls[-1].problems[0]
    assert [record.call_id for record in report.unplanned] == ["extra"]
    assert not report.matched


def test_write_without_approval_is_a_mismatch() -> None:
    """A write that did not go through the approval handler is reported, even with the right output."""
    call = next(c for p in PLANS for c in p.calls if c.name == "cancel_pending_order")
    assert call.reference is not None
    received = ToolCallRecord(call_id=call.call_id, agent="pending_orders", name=call.name, arguments=call.arguments)

    report = CallReport(expected=call, received=received, output=call.reference.output, approved=False)

    assert report.problems == ("the write did not go through the approval handler",)
    assert CallReport(expected=call, received=received, output=call.reference.output, approved=True).matched


@pytest.mark.anyio
async def test_replay_model_refuses_a_conversation_it_has_no_script_for() -> None:
    """A replay model asked for a conversation it has no script for fails that delegation, naming the agent."""
    plan = delegating_plan()
    models = replay_models(plan)
    specialist = next(agent for agent, model in models.items() if agent != FRONT_DESK and model.conversations)
    assert isinstance(models[specialist], ReplayModel)
    models[specialist] = ReplayModel(specialist, [])

    with TEMPLATE.fresh() as db:
        report = await run_task(build_desk(models), plan, db)

    failures = [o for o in tool_outputs(report.trace).values() if o.startswith("Error: The replay of agent")]
    assert len(failures) == 1
    assert repr(specialist) in failures[0]
    assert "it did not reach the tool" in [p for c in report.calls for p in c.problems]
    assert not report.matched


@pytest.mark.anyio
async def test_replay_tasks_refuses_no_concurrency() -> None:
    """Replaying with a concurrency below 1 is refused with a message."""
    with pytest.raises(ValueError, match="concurrency=0"):
        await replay_tasks(PLANS[:1], TEMPLATE.fresh, concurrency=0)


def test_command_line_replays_one_task_with_its_trace() -> None:
    """`--task` replays one task, prints its trace (format_trace) with delegations and lineage, and exits with 0."""
    plan = next(p for p in PLANS if len({OWNER[c.name] for c in p.calls}) == 3)
    out = io.StringIO()

    code = main(["--task", plan.task_id], out=out)

    report = out.getvalue()
    assert code == 0
    assert "tasks matched    1/1" in report
    assert f"calls matched    {len(plan.gold_calls)}/{len(plan.gold_calls)}" in report
    assert "MISMATCH" not in report
    delegations = [line for line in report.splitlines() if line.startswith("delegation ")]
    assert len(delegations) >= 2
    assert all("depth=1" in line and "parent=" in line for line in delegations)
    assert all(f"ok       [{c.call_id}] {c.name}" in report for c in plan.calls)


def test_command_line_refuses_an_unknown_task(capsys: pytest.CaptureFixture[str]) -> None:
    """`--task` with an id that is not a task exits with 2 and names the valid ids."""
    with pytest.raises(SystemExit) as exited:
        main(["--task", "114"], out=io.StringIO())

    assert exited.value.code == 2
    assert "the task ids are 0 to 113" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("model", "key"), [("openai:gpt-4o-mini", "OPENAI_API_KEY"), ("anthropic:claude-sonnet-4-5", "ANTHROPIC_API_KEY")]
)
def test_command_line_needs_the_providers_api_key(
    model: str, key: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--model openai:...` or `anthropic:...` without the provider's API key fails with exit code 2 and names it."""
    monkeypatch.delenv(key, raising=False)

    code = main(["--model", model], out=io.StringIO())

    assert code == 2
    assert key in capsys.readouterr().err


def test_command_line_drives_the_desk_with_a_model() -> None:
    """`--model` runs the desk with that model on one task and prints the conversation, refusals included."""
    out = io.StringIO()

    code = main(["--model", "test", "--task", "3"], out=out)

    conversation = out.getvalue()
    assert code == 0
    assert conversation.startswith("customer: ")
    assert "delegation pending_orders agent=pending_orders depth=1" in conversation
    assert "needs an authenticated user" in conversation
    assert "changed records: none" in conversation


def test_command_line_drives_the_desk_with_an_openai_compatible_server(monkeypatch: pytest.MonkeyPatch) -> None:
    """`--model openai:...` runs the desk against the configured server and prints the conversation."""
    identify = Call(
        name="find_user_id_by_name_zip", arguments={"first_name": "Yusuf", "last_name": "Rossi", "zip": "19122"}
    )
    with ChatServer() as server:
        server.script = [
            Reply(tool_calls=[identify]),
            Reply(tool_calls=[Call(name="pending_orders", arguments={"task": "Cancel #W2378156: no longer needed."})]),
            Reply(
                tool_calls=[
                    Call(name="cancel_pending_order", arguments={"order_id": "#W2378156", "reason": "no longer needed"})
                ]
            ),
            Reply(text="It cannot be cancelled."),
            Reply(text="Sorry, your order was delivered already."),
        ]
        monkeypatch.setenv("OPENAI_API_KEY", "test-key")
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        out = io.StringIO()

        code = main(["--model", "openai:fake-model", "--task", "0"], out=out)

    conversation = out.getvalue()
    assert code == 0
    assert "-> yusuf_rossi_9620" in conversation
    assert "pending_orders wants cancel_pending_order" in conversation
    assert "-> Error: Non-pending order cannot be cancelled" in conversation
    assert "front_desk: Sorry, your order was delivered already." in conversation
    assert "changed records: none" in conversation
