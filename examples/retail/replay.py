"""Replaying the tau2 retail tasks' gold actions through the desk, offline.

For each task, `plan_task` lists the calls to make: the task's gold actions in order,
preceded, when the gold list starts after the customer was authenticated (45 tasks list
only their writes), by the identification call the policy requires. The customer gives
the identification in the task's `known_info`; the replay uses their email when it is
there, otherwise their name and zip code.

`ReplayModel` turns the plans into one offline model for all agents of one desk, which
serves all tasks concurrently (an `Agent` is configuration; each run has its own
state). The front desk's model finds its script by the conversation's opening message.
The front desk calls its own tools itself and delegates each run of consecutive calls
owned by one specialist to that specialist, describing the calls in the delegation's
task text; the specialist's model looks its segment up by that text (a specialist may
be called twice in one task, and every delegation starts a fresh history, so the step
count alone cannot tell the segments apart). The model is stateless: the step is the
number of model responses in the history. Every call is a `ToolCall` whose id is the
gold `action_id`, so the outputs captured from the run's trace are matched to the
reference by id.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from functools import cache
from typing import Any

import anyio

from cogent import Agent, RunResult, ToolApprovalItem, ToolCall, TraceEvent
from cogent.agent import APPROVED
from cogent.core import now_utc
from cogent.messages import Message, ModelResponse, ToolReturn, UserPrompt
from cogent.models import FunctionModel, ModelRequestParameters

from .context import RetailContext
from .desk import FRONT_DESK, OWNER, build_desk
from .policy import AUTHENTICATED_TOOLS
from .store import DATA_DIR, RetailDB, RetailError, User
from .tools import IDENTIFICATION_TOOLS

__all__ = [
    "GoldCall",
    "ReplayModel",
    "TaskOutcome",
    "TaskPlan",
    "approve_all",
    "load_plans",
    "plan_task",
    "replay_all",
    "replay_task",
    "tool_outputs",
]

Reply = ModelResponse | str | ToolCall | list[ToolCall]
"""What an offline model's function may return (see `cogent.models.FunctionModel`)."""

_RESULT_KINDS = frozenset({"tool_call", "tool_error", "interceptor", "approval"})
"""Trace events whose `detail` is a tool call's result as the model received it."""


@dataclass(kw_only=True, frozen=True)
class GoldCall:
    """One tool call the replay makes, and the output the reference implementation gives."""

    call_id: str
    """The gold `action_id`, or `<task id>_identify` for an added identification call."""
    name: str
    """The tool."""
    arguments: dict[str, Any]
    """The arguments, verbatim from the task."""
    expected: str
    """The exact output the reference returns at this point of the task."""
    gold: bool = True
    """False for an identification call the task's gold list leaves out."""


@dataclass(kw_only=True, frozen=True)
class TaskPlan:
    """What the replay of one task does and what it must produce."""

    task_id: str
    """The tau2 task id (`"0"` to `"113"`)."""
    opening: str
    """The customer's first message: their known information and reason for calling."""
    calls: tuple[GoldCall, ...]
    """The calls, in order."""
    final_db_sha256: str
    """The canonical hash of the database after the task, from the reference."""

    @property
    def gold_calls(self) -> tuple[GoldCall, ...]:
        """The calls that are the task's gold actions."""
        return tuple(call for call in self.calls if call.gold)


def _owner(db: RetailDB, name: str, arguments: dict[str, Any]) -> str | None:
    """Return the user a user-data call concerns, or None if its order does not exist."""
    if "user_id" in arguments:
        return str(arguments["user_id"])
    try:
        return db.orders.get(arguments["order_id"])["user_id"]
    except RetailError:
        return None


def _identification(task_id: str, known_info: str, user: User) -> GoldCall:
    """Return the identification call for `user` that the customer's known information allows.

    Raises:
        ValueError: If `known_info` holds neither the user's email nor their name and zip.
    """
    name, zip_code = user["name"], user["address"]["zip"]
    if user["email"].lower() in known_info.lower():
        tool, arguments = "find_user_id_by_email", {"email": user["email"]}
    elif all(part in known_info for part in (name["first_name"], name["last_name"], zip_code)):
        tool = "find_user_id_by_name_zip"
        arguments = {"first_name": name["first_name"], "last_name": name["last_name"], "zip": zip_code}
    else:
        raise ValueError(
            f"Task {task_id} acts for user {user['user_id']} without authenticating them, and its known_info "
            "gives neither their email nor their name and zip code; add the identification to the task."
        )
    return GoldCall(call_id=f"{task_id}_identify", name=tool, arguments=arguments, expected=user["user_id"], gold=False)


def plan_task(task: dict[str, Any], outcome: dict[str, Any], db: RetailDB) -> TaskPlan:
    """Return the replay plan of one task.

    Args:
        task: The task, from `tasks.json`.
        outcome: Its reference outcome, from `expected_outcomes.json`.
        db: An unchanged database, to find whose orders the task acts on.

    Returns:
        The plan: the gold calls, with an identification call first where the policy
        requires one and the gold list has none.

    Raises:
        ValueError: If the task acts for a user its known information cannot identify.
    """
    task_id = task["id"]
    instructions = task["user_scenario"]["instructions"]
    calls: list[GoldCall] = []
    authenticated = False
    for action in outcome["actions"]:
        name, arguments = action["name"], action["arguments"]
        if name in AUTHENTICATED_TOOLS and not authenticated:
            user_id = _owner(db, name, arguments)
            if user_id is not None:
                calls.append(_identification(task_id, instructions["known_info"] or "", db.users.get(user_id)))
                authenticated = True
        if name in IDENTIFICATION_TOOLS and not action["error"]:
            authenticated = True
        calls.append(GoldCall(call_id=action["action_id"], name=name, arguments=arguments, expected=action["output"]))
    opening = "\n".join(text for text in (instructions["known_info"], instructions["reason_for_call"]) if text)
    return TaskPlan(
        task_id=task_id,
        opening=f"(My notes, written to myself.)\n{opening}",
        calls=tuple(calls),
        final_db_sha256=outcome["final_db_sha256"],
    )


@cache
def load_plans() -> tuple[TaskPlan, ...]:
    """Return the plans of the 114 tasks, in `tasks.json` order (read once per process)."""
    tasks = json.loads((DATA_DIR / "tasks.json").read_text(encoding="utf-8"))
    outcomes = json.loads((DATA_DIR / "expected_outcomes.json").read_text(encoding="utf-8"))
    db = RetailDB.fresh()
    return tuple(plan_task(task, outcomes[task["id"]], db) for task in tasks)


def _describe(task_id: str, number: int, calls: Sequence[GoldCall]) -> str:
    """Return the task text of a delegation: the case (task) number, the request number and the calls."""
    lines = [f"Case {task_id}, request {number}. The authenticated user confirmed (yes):"]
    lines += [f"- {call.name} {json.dumps(call.arguments)}" for call in calls]
    return "\n".join(lines)


class ReplayModel(FunctionModel):
    """The offline model of the desk: each agent plays its part of each task's plan.

    Args:
        plans: The tasks to play; their opening messages must differ.

    Attributes:
        fronts: The front desk's responses (one per model request), by opening message.
        segments: The calls a specialist makes, by delegation task text (which names
            the case, so that each text is unique).

    Raises:
        ValueError: If two plans have the same opening message.
    """

    def __init__(self, plans: Sequence[TaskPlan]) -> None:
        super().__init__(self.respond, name="gold-replay")
        self.fronts: dict[str, list[Reply]] = {}
        self.segments: dict[str, list[ToolCall]] = {}
        for plan in plans:
            if plan.opening in self.fronts:
                raise ValueError(f"Task {plan.task_id} has the opening message of another task; make it unique.")
            self.fronts[plan.opening] = self._script(plan)

    def _script(self, plan: TaskPlan) -> list[Reply]:
        """Return the front desk's responses for one plan, registering its delegated segments."""
        front: list[Reply] = []
        number = 0
        for owner, group in itertools.groupby(plan.calls, key=lambda call: OWNER[call.name]):
            gold = list(group)
            calls = [ToolCall(call.name, call.arguments, call.call_id) for call in gold]
            if owner == FRONT_DESK:
                front += calls
                continue
            number += 1
            task = _describe(plan.task_id, number, gold)
            self.segments[task] = calls
            front.append(ToolCall(owner, {"task": task}, f"{plan.task_id}_delegate_{number}"))
        front.append("Everything you asked for is done. Is there anything else I can help with?")
        return front

    def respond(self, messages: list[Message], info: ModelRequestParameters) -> Reply:
        """Return the next response of the agent making the request.

        The script is found by the first message (the customer's opening message, or
        the delegated task); the step is the number of model responses in the history.
        A specialist that made its calls reports, per call, `done` or the error.

        Raises:
            LookupError: If the first message is in no script.
        """
        first = messages[0]
        key = first.content if isinstance(first, UserPrompt) else ""
        step = sum(isinstance(message, ModelResponse) for message in messages)
        script: Sequence[Reply] | None = (
            self.fronts.get(key) if info.agent_name == FRONT_DESK else self.segments.get(key)
        )
        if script is None:
            raise LookupError(f"The replay has no script for agent {info.agent_name!r} starting with {key!r}.")
        if step < len(script):
            return script[step]
        return "\n".join(
            f"{m.tool_name}: {m.content if m.content.startswith('Error: ') else 'done'}"
            for m in messages
            if isinstance(m, ToolReturn)
        )


def approve_all(item: ToolApprovalItem) -> bool:
    """Approve a write: in every gold conversation the customer confirmed it (yes)."""
    return True


def tool_outputs(trace: Sequence[TraceEvent]) -> dict[str, str]:
    """Return every tool call's result as the model received it, by call id, from a run's trace.

    The trace includes the calls made by subagents (nested under their delegation).
    """
    outputs: dict[str, str] = {}
    for event in trace:
        approved = event.kind == "approval" and event.detail == APPROVED
        if event.kind in _RESULT_KINDS and not approved and event.call_id is not None and event.detail is not None:
            outputs[event.call_id] = event.detail
        outputs.update(tool_outputs(event.children))
    return outputs


@dataclass(kw_only=True)
class TaskOutcome:
    """What the replay of one task produced, next to what the reference produced."""

    plan: TaskPlan
    """The task's plan."""
    outputs: dict[str, str] = field(default_factory=dict)
    """Each call's output as the model received it, by call id."""
    final_db_sha256: str = ""
    """The canonical hash of the task's database after the run."""
    result: RunResult[RetailContext, str] | None = None
    """The desk's run result (None if the run failed)."""
    error: Exception | None = None
    """The exception the run raised, if it failed."""

    @property
    def calls_matched(self) -> int:
        """How many gold calls returned exactly the reference output."""
        return sum(self.outputs.get(call.call_id) == call.expected for call in self.plan.gold_calls)

    @property
    def identifications_matched(self) -> bool:
        """Whether every added identification call returned the expected user id."""
        return all(self.outputs.get(call.call_id) == call.expected for call in self.plan.calls if not call.gold)

    @property
    def db_matched(self) -> bool:
        """Whether the final database hashes to the reference's."""
        return self.final_db_sha256 == self.plan.final_db_sha256

    @property
    def matched(self) -> bool:
        """Whether the task ran and every output and the final database match."""
        return (
            self.error is None
            and self.calls_matched == len(self.plan.gold_calls)
            and self.identifications_matched
            and self.db_matched
        )


async def replay_task(
    desk: Agent[RetailContext, str], plan: TaskPlan, *, deadline_seconds: float = 60.0
) -> TaskOutcome:
    """Run one task's conversation through a desk driven by a `ReplayModel` that knows it.

    The task gets its own fresh database and context; every write is approved.

    Args:
        desk: The desk, from `build_desk(ReplayModel(plans))`.
        plan: The task's plan.
        deadline_seconds: The run's deadline, from now (seconds).

    Returns:
        The outcome; a run that raised is recorded in `outcome.error`.
    """
    ctx = RetailContext(db=RetailDB.fresh(), deadline=now_utc() + timedelta(seconds=deadline_seconds))
    outcome = TaskOutcome(plan=plan)
    try:
        outcome.result = await desk.run(plan.opening, context=ctx, approval_handler=approve_all)
    except Exception as exc:
        outcome.error = exc
        return outcome
    outcome.outputs = tool_outputs(outcome.result.trace)
    outcome.final_db_sha256 = ctx.db.canonical_sha256()
    return outcome


async def replay_all(
    plans: Sequence[TaskPlan], *, on_done: Callable[[TaskOutcome], None] | None = None
) -> list[TaskOutcome]:
    """Replay tasks concurrently through one desk, each with its own database and context.

    Args:
        plans: The tasks to replay.
        on_done: Called with each outcome as its task finishes (e.g. a progress bar).

    Returns:
        The outcomes, in the order of `plans`.
    """
    desk = build_desk(ReplayModel(plans))
    outcomes: list[TaskOutcome | None] = [None] * len(plans)

    async def one(index: int, plan: TaskPlan) -> None:
        outcomes[index] = outcome = await replay_task(desk, plan)
        if on_done is not None:
            on_done(outcome)

    async with anyio.create_task_group() as group:
        for index, plan in enumerate(plans):
            group.start_soon(one, index, plan)
    return [outcome for outcome in outcomes if outcome is not None]
