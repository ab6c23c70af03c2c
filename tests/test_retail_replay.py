"""The tau2 retail replay: all 114 tasks' gold actions through the desk, checked byte for byte (examples/retail)."""

from __future__ import annotations

import dataclasses
import io
import json

import pytest
from chat_server import Call, ChatServer, Reply

from examples.retail.desk import FRONT_DESK, OWNER
from examples.retail.policy import AUTHENTICATED_TOOLS
from examples.retail.replay import load_plans, replay_all
from examples.retail.runner import main
from examples.retail.store import DATA_DIR
from examples.retail.tools import IDENTIFICATION_TOOLS

EXPECTED = json.loads((DATA_DIR / "expected_outcomes.json").read_text(encoding="utf-8"))


@pytest.mark.anyio
async def test_all_tasks_replay_exactly() -> None:
    """Every gold call's output and every task's final database equal the reference, with all tasks run concurrently."""
    plans = load_plans()

    outcomes = await replay_all(plans)

    assert len(outcomes) == len(EXPECTED) == 114
    assert [o.error for o in outcomes if o.error] == []
    assert sum(o.calls_matched for o in outcomes) == sum(len(v["actions"]) for v in EXPECTED.values()) == 553
    assert [o.final_db_sha256 for o in outcomes] == [v["final_db_sha256"] for v in EXPECTED.values()]
    assert all(o.matched for o in outcomes)
    for o in outcomes:  # the shared session ends on the first user identified
        identified = [
            c.expected for c in o.plan.calls if c.name in IDENTIFICATION_TOOLS and c.expected[:7] != "Error: "
        ]
        assert o.result is not None
        assert o.result.context.session.user_id == (identified[0] if identified else None)


def test_plans_follow_the_gold_actions_and_authenticate_first() -> None:
    """Each plan holds its task's gold actions in order, and an identification precedes every user-data call."""
    plans = load_plans()
    for plan in plans:
        gold = EXPECTED[plan.task_id]["actions"]
        assert [(c.call_id, c.name, c.arguments, c.expected) for c in plan.gold_calls] == [
            (a["action_id"], a["name"], a["arguments"], a["output"]) for a in gold
        ]
        identified = False
        for call in plan.calls:
            assert identified or call.name not in AUTHENTICATED_TOOLS, call.call_id
            identified = identified or (call.name in IDENTIFICATION_TOOLS and not call.expected.startswith("Error: "))
    assert sum(not c.gold for p in plans for c in p.calls) == 45


@pytest.mark.anyio
async def test_replay_detects_a_wrong_output_and_a_wrong_database() -> None:
    """A reference output or final hash that the run does not reproduce makes the task fail."""
    plan = next(p for p in load_plans() if any(OWNER[c.name] != FRONT_DESK for c in p.calls))
    wrong_call = dataclasses.replace(plan.calls[-1], expected=plan.calls[-1].expected + " ")
    tampered = [
        dataclasses.replace(plan, calls=(*plan.calls[:-1], wrong_call)),
        dataclasses.replace(plan, task_id="other", opening=plan.opening + " ", final_db_sha256="0" * 64),
    ]

    wrong_output, wrong_db = await replay_all(tampered)

    assert wrong_output.calls_matched == len(plan.gold_calls) - 1
    assert wrong_output.db_matched
    assert not wrong_output.matched
    assert not wrong_db.db_matched
    assert not wrong_db.matched


def test_command_line_replays_one_task_with_its_trace() -> None:
    """`--task` replays one task, prints its trace tree with delegations and lineage, and exits with 0."""
    plan = next(p for p in load_plans() if len({OWNER[c.name] for c in p.calls}) == 3)
    out = io.StringIO()

    code = main(["--task", plan.task_id], out=out)

    report = out.getvalue()
    assert code == 0
    assert "tasks matched    1/1" in report
    assert f"calls matched    {len(plan.gold_calls)}/{len(plan.gold_calls)}" in report
    assert "MISMATCH" not in report
    delegations = [line for line in report.splitlines() if "delegates to" in line]
    assert len(delegations) >= 2
    assert all("depth 1" in line and "parent " in line for line in delegations)


def test_command_line_needs_an_api_key_for_openai_models(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--model openai:...` without OPENAI_API_KEY fails with exit code 2 and says how to fix it."""
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)

    code = main(["--model", "openai:gpt-4o-mini"], out=io.StringIO())

    assert code == 2
    assert "OPENAI_API_KEY" in capsys.readouterr().err


def test_command_line_drives_the_desk_with_a_model() -> None:
    """`--model` runs the desk with that model on one task and prints the conversation, refusals included."""
    out = io.StringIO()

    code = main(["--model", "test", "--task", "3"], out=out)

    conversation = out.getvalue()
    assert code == 0
    assert conversation.startswith("customer: ")
    assert "front_desk delegates to pending_orders" in conversation
    assert "needs an authenticated user" in conversation
    assert "changed records: none" in conversation


def test_command_line_drives_the_desk_with_an_openai_compatible_server(monkeypatch: pytest.MonkeyPatch) -> None:
    """`--model openai:...` runs the desk against the configured server and streams the conversation."""
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
