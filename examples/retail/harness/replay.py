"""Replaying a task through the desk, and checking every call and the final database.

`run_task(desk, plan, db)` runs one task's conversation through any desk on a database
and returns a `TaskReport`: for each planned call, what the tool received (recorded by a
run-level PRE_ACT interceptor), what the model received (from the run's trace), whether
it went through the approval handler, and how that compares with `tasks.json` and
`expected_outcomes.json`; and the canonical hash of the final database.

`replay_models(plan)` gives the offline models that make a desk play a task's gold
calls: one `ReplayModel` per agent, built for that task only. The front desk makes its
own calls and delegates each run of consecutive calls owned by one specialist; the
specialist's model makes them. Every call's id is its gold `action_id`.
`replay_tasks` replays many tasks concurrently, each with its own desk and database.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import anyio
import anyio.to_thread
import sqlalchemy as sa

from cogent import Agent, Interceptor, RunResult, ToolApprovalItem, ToolCall, TraceEvent
from cogent.core import now_utc
from cogent.interceptors import InterceptContext
from cogent.messages import Message, ModelResponse, ToolReturn
from cogent.models import Model, ModelRequestParameters
from cogent.usage import Usage

from ..context import RetailContext
from ..desk import AGENTS, FRONT_DESK, OWNER, build_desk
from ..tools import TOOLS, WRITE_TOOLS
from .hashing import CanonicalHasher
from .tasks import ExpectedCall, TaskPlan

__all__ = [
    "CallReport",
    "ReplayModel",
    "TaskReport",
    "ToolCallRecord",
    "check_task",
    "replay_models",
    "replay_tasks",
    "run_task",
    "tool_outputs",
]

_RESULT_KINDS = frozenset({"tool_call", "tool_error", "interceptor", "approval"})
"""Trace events whose `detail` is a tool call's result as the model received it."""


# --- The offline models ------------------------------------------------------------------


class ReplayModel(Model):
    """An offline model that plays one agent's part in one task: each of its conversations, in order.

    The desk makes one request at a time per agent (`parallel_tool_calls=False`), so a
    request whose history holds no model response starts the agent's next conversation
    (the front desk has one; a specialist one per delegation). Its reply is the step-th
    response of that conversation, the step being the number of model responses in the
    history. After its scripted calls, a specialist reports each call's outcome.

    Args:
        agent: The agent that uses the model.
        conversations: The responses of each conversation.

    Attributes:
        started: How many conversations have started.
    """

    def __init__(self, agent: str, conversations: Sequence[Sequence[ModelResponse]]) -> None:
        self.name = f"replay:{agent}"
        self.agent = agent
        self.conversations = conversations
        self.started = 0

    async def request(self, messages: list[Message], params: ModelRequestParameters) -> ModelResponse:
        """Return the next scripted response.

        Raises:
            LookupError: If the desk starts more conversations with this agent than the
                script has.
        """
        step = sum(isinstance(message, ModelResponse) for message in messages)
        if step == 0:
            self.started += 1
        if self.started > len(self.conversations):
            raise LookupError(
                f"The replay of agent {self.agent!r} has {len(self.conversations)} conversation(s) scripted, and the "
                f"desk started conversation {self.started}; the desk delegated differently from the plan."
            )
        return self.answer(self.conversations[self.started - 1], messages)

    def answer(self, script: Sequence[ModelResponse], messages: list[Message]) -> ModelResponse:
        """Return the response of one conversation's script to `messages`: its step-th scripted
        response, then a report of each call's outcome."""
        step = sum(isinstance(message, ModelResponse) for message in messages)
        if step < len(script):
            return script[step]
        returns = [message for message in messages if isinstance(message, ToolReturn)]
        outcomes = [f"{r.tool_name}: {r.content if r.content.startswith('Error: ') else 'done'}" for r in returns]
        return ModelResponse(text="\n".join(outcomes), model_name=self.name)


def _call(call: ExpectedCall, agent: str) -> ModelResponse:
    """The response of `agent`'s model that makes the planned call (its id is the gold `action_id`)."""
    return ModelResponse(
        tool_calls=[ToolCall(call.name, dict(call.arguments), call.call_id)], model_name=f"replay:{agent}"
    )


def replay_models(plan: TaskPlan) -> dict[str, ReplayModel]:
    """Return one `ReplayModel` per agent of the desk that together make the task's planned calls.

    Args:
        plan: The task.

    Returns:
        The models by agent name, for `build_desk`.
    """
    conversations: dict[str, list[list[ModelResponse]]] = {agent: [] for agent in AGENTS}
    front: list[ModelResponse] = []
    for number, (owner, group) in enumerate(itertools.groupby(plan.calls, key=lambda call: OWNER[call.name])):
        calls = list(group)
        if owner == FRONT_DESK:
            front += [_call(call, FRONT_DESK) for call in calls]
            continue
        conversations[owner].append([_call(call, owner) for call in calls])
        task = "The authenticated user confirmed (yes):\n" + "\n".join(
            f"- {call.name} {json.dumps(call.arguments)}" for call in calls
        )
        front.append(ModelResponse(tool_calls=[ToolCall(owner, {"task": task}, f"{plan.task_id}_delegate_{number}")]))
    front.append(ModelResponse(text="Everything you asked for is done. Is there anything else I can help with?"))
    conversations[FRONT_DESK] = [front]
    return {agent: ReplayModel(agent, scripts) for agent, scripts in conversations.items()}


# --- What a run did ------------------------------------------------------------------------


@dataclass(kw_only=True, frozen=True)
class ToolCallRecord:
    """A retail tool call as the tool received it (after the desk's own interceptors)."""

    call_id: str
    """The tool call's id."""
    agent: str
    """The agent whose model made it."""
    name: str
    """The tool."""
    arguments: Mapping[str, Any]
    """The validated arguments."""


class _CallRecorder(Interceptor):
    """A run-level PRE_ACT interceptor that records every retail tool call about to run."""

    def __init__(self) -> None:
        self.calls: dict[str, ToolCallRecord] = {}

    def pre_act(self, context: InterceptContext) -> None:
        if context.tool_name in TOOLS and context.tool_call_id is not None:
            self.calls[context.tool_call_id] = ToolCallRecord(
                call_id=context.tool_call_id,
                agent=context.agent.name,
                name=context.tool_name,
                arguments=dict(context.tool_args or {}),
            )


def tool_outputs(trace: Sequence[TraceEvent]) -> dict[str, str]:
    """Return every tool call's result as the model received it, by call id, from a run's trace.

    A call's result is the `detail` of its last result event (an approved call's result
    comes after its approval), and the calls of subagents are included.
    """
    outputs: dict[str, str] = {}
    for event in trace:
        if event.kind in _RESULT_KINDS and event.call_id is not None and event.detail is not None:
            outputs[event.call_id] = event.detail
        outputs.update(tool_outputs(event.children))
    return outputs


# --- Reports ------------------------------------------------------------------------------


@dataclass(kw_only=True, frozen=True)
class CallReport:
    """One planned call: what happened, next to what `tasks.json` and the reference say."""

    expected: ExpectedCall
    """The planned call and the reference's outcome."""
    received: ToolCallRecord | None
    """The call as the tool received it; `None` if no call with this id reached the tool."""
    output: str | None
    """The result the model received; `None` if the call got none."""
    approved: bool
    """Whether the call went through the approval handler, which approved it."""

    @property
    def problems(self) -> tuple[str, ...]:
        """What differs from the plan and the reference, one sentence each; empty if nothing."""
        expected, reference, received = self.expected, self.expected.reference, self.received
        problems = []
        if received is None:
            problems.append("it did not reach the tool")
        elif (received.name, received.arguments) != (expected.name, expected.arguments):
            problems.append(
                f"the tool received {received.name} {json.dumps(received.arguments)}, and tasks.json says "
                f"{expected.name} {json.dumps(expected.arguments)}"
            )
        if reference is None:
            problems.append("expected_outcomes.json has no outcome for this action")
        else:
            if (reference.name, reference.arguments) != (expected.name, expected.arguments):
                problems.append(
                    f"expected_outcomes.json's output is for {reference.name} {json.dumps(reference.arguments)}, "
                    f"and tasks.json says {expected.name} {json.dumps(expected.arguments)}"
                )
            if self.output != reference.output:
                problems.append(
                    f"the output {_clip(self.output)} differs from the reference's {_clip(reference.output)}"
                )
        if expected.name in WRITE_TOOLS and not self.approved:
            problems.append("the write did not go through the approval handler")
        return tuple(problems)

    @property
    def matched(self) -> bool:
        """Whether the call happened exactly as planned and returned the reference's output."""
        return not self.problems


def _clip(text: str | None, width: int = 100) -> str:
    if text is None:
        return "(none)"
    return repr(text if len(text) <= width else text[: width - 3] + "...")


@dataclass(kw_only=True, frozen=True)
class TaskReport:
    """The replay of one task, checked.

    The report holds no live resource (no context, no database), so reports can be kept
    after their databases are gone.
    """

    plan: TaskPlan
    """The task's plan."""
    calls: tuple[CallReport, ...]
    """One report per planned call, in plan order."""
    unplanned: tuple[ToolCallRecord, ...]
    """Retail tool calls that reached a tool and are not in the plan."""
    final_db_sha256: str | None
    """The canonical hash of the database after the run; `None` if the run failed."""
    trace: tuple[TraceEvent, ...] = ()
    """The run's trace (`RunResult.trace`); empty if the run raised."""
    usage: Usage = field(default_factory=Usage)
    """The run's usage, summed over the desk's agents."""
    output: str | None = None
    """The front desk's last answer; `None` if the run raised."""
    user_id: str | None = None
    """The user the conversation authenticated, at its end."""
    error: BaseException | None = None
    """What the run raised, if it failed."""
    seconds: float = 0.0
    """How long the run and the hash took (seconds)."""
    approvals: tuple[ToolApprovalItem, ...] = ()
    """The calls the approval handler approved, in order."""

    @property
    def gold_calls_matched(self) -> int:
        """How many gold calls happened as planned and returned the reference's output."""
        return sum(call.matched for call in self.calls if call.expected.gold)

    @property
    def identifications(self) -> tuple[CallReport, ...]:
        """The identification calls the plan added (not gold)."""
        return tuple(call for call in self.calls if not call.expected.gold)

    @property
    def db_matched(self) -> bool:
        """Whether the final database hashes to the reference's."""
        return self.final_db_sha256 == self.plan.final_db_sha256

    @property
    def matched(self) -> bool:
        """Whether the run finished, every planned call matched, no other call ran, and the database matched."""
        return (
            self.error is None and all(call.matched for call in self.calls) and not self.unplanned and self.db_matched
        )


def _hash(db: sa.Engine, hasher: CanonicalHasher) -> str:
    with db.connect() as conn:
        return hasher.sha256(conn)


async def run_task(
    desk: Agent[RetailContext, str],
    plan: TaskPlan,
    db: sa.Engine,
    *,
    deadline_seconds: float = 60.0,
    on_approval: Callable[[ToolApprovalItem], None] | None = None,
    hasher: CanonicalHasher | None = None,
) -> TaskReport:
    """Run one task's conversation through a desk on a database, approve every write, and check the run.

    Args:
        desk: The desk (`build_desk`), with any models: the replay's or a real one.
        plan: The task.
        db: The conversation's database, unchanged `db.json` (it is changed by the run).
        deadline_seconds: The run's deadline, from now (seconds).
        on_approval: Called with each write before it is approved (e.g. to print it).
        hasher: Hashes the final database; share one between tasks (a new one by default).

    Returns:
        The report; a run that raised is recorded in `report.error`, not raised.
    """
    started = time.perf_counter()
    recorder = _CallRecorder()
    approvals: list[ToolApprovalItem] = []

    def approve(item: ToolApprovalItem) -> bool:  # in every gold conversation the customer confirmed (yes)
        if on_approval is not None:
            on_approval(item)
        approvals.append(item)
        return True

    ctx = RetailContext(db=db, deadline=now_utc() + timedelta(seconds=deadline_seconds))
    result: RunResult[RetailContext, str] | None = None
    error: BaseException | None = None
    try:
        result = await desk.run(plan.opening, context=ctx, approval_handler=approve, interceptors=[recorder])
    except Exception as exc:
        error = exc
    final_db_sha256 = None if error else await anyio.to_thread.run_sync(_hash, db, hasher or CanonicalHasher())
    return check_task(
        plan,
        result=result,
        error=error,
        received=recorder.calls,
        approvals=approvals,
        final_db_sha256=final_db_sha256,
        user_id=ctx.session.user_id,
        seconds=time.perf_counter() - started,
    )


def check_task(
    plan: TaskPlan,
    *,
    result: RunResult[RetailContext, str] | None,
    error: BaseException | None,
    received: Mapping[str, ToolCallRecord],
    approvals: Sequence[ToolApprovalItem],
    final_db_sha256: str | None,
    user_id: str | None,
    seconds: float,
) -> TaskReport:
    """Check what a run of a task did against its plan (see `TaskReport`).

    Args:
        plan: The task.
        result: The run's result; `None` if it raised.
        error: What the run raised, or `None`.
        received: Every retail tool call as the tool received it, by call id.
        approvals: The calls the approval handler approved, in order.
        final_db_sha256: The canonical hash of the database after the run; `None` if it failed.
        user_id: The user the conversation authenticated.
        seconds: How long the run took.

    Returns:
        The report.
    """
    trace = tuple(result.trace) if result is not None else ()
    outputs = tool_outputs(trace)
    approved = {item.call_id for item in approvals}
    planned = {call.call_id for call in plan.calls}
    return TaskReport(
        plan=plan,
        calls=tuple(
            CallReport(
                expected=call,
                received=received.get(call.call_id),
                output=outputs.get(call.call_id),
                approved=call.call_id in approved,
            )
            for call in plan.calls
        ),
        unplanned=tuple(record for call_id, record in received.items() if call_id not in planned),
        final_db_sha256=final_db_sha256,
        trace=trace,
        usage=result.usage if result is not None else Usage(),
        output=result.output if result is not None else None,
        user_id=user_id,
        error=error,
        seconds=seconds,
        approvals=tuple(approvals),
    )


async def replay_tasks(
    plans: Sequence[TaskPlan],
    databases: Callable[[], AbstractContextManager[sa.Engine]],
    *,
    concurrency: int = 16,
    on_done: Callable[[TaskReport], None] | None = None,
) -> list[TaskReport]:
    """Replay tasks concurrently, each through its own desk of replay models on its own fresh database.

    Args:
        plans: The tasks.
        databases: Opens a fresh database holding the unchanged `db.json` (e.g.
            `DatabaseTemplate.fresh`); it is closed when its task is checked.
        concurrency: How many tasks run (and hold a database) at the same time.
        on_done: Called with each report as its task finishes (e.g. a progress bar).

    Returns:
        The reports, in the order of `plans`.

    Raises:
        ValueError: If `concurrency` is less than 1.
    """
    if concurrency < 1:
        raise ValueError(f"replay_tasks() got concurrency={concurrency}; run at least 1 task at a time.")
    reports: list[TaskReport | None] = [None] * len(plans)
    limiter, hasher = anyio.CapacityLimiter(concurrency), CanonicalHasher()

    async def one(index: int, plan: TaskPlan) -> None:
        async with limiter:
            with databases() as db:
                reports[index] = report = await run_task(build_desk(replay_models(plan)), plan, db, hasher=hasher)
        if on_done is not None:
            on_done(report)

    async with anyio.create_task_group() as group:
        for index, plan in enumerate(plans):
            group.start_soon(one, index, plan)
    return [report for report in reports if report is not None]
