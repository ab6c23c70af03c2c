"""Command line of the retail example: `python -m examples.retail`.

Without options it replays the gold actions of all 114 tau2 retail tasks concurrently
through the desk, compares every call's output and every final database with the
reference, and prints a report with the trace of one task. `--task ID` replays one task
and prints its full trace. `--model openai:<name>` lets a real model drive the desk on
one task instead (no verification: it prints the conversation).

The exit code is 0 only if everything matched (or, with `--model`, the run finished).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import TextIO

import anyio

from cogent import ToolApprovalItem, TraceEvent
from cogent.agent import (
    APPROVED,
    DelegationEndEvent,
    DelegationStartEvent,
    FinalResultEvent,
    TextDeltaEvent,
    ToolCallEvent,
    ToolResultEvent,
)
from cogent.core import now_utc
from cogent.exceptions import UserError
from cogent.models import Model, infer_model

from .context import RetailContext
from .desk import FRONT_DESK, OWNER, build_desk
from .replay import TaskOutcome, TaskPlan, load_plans, replay_all
from .store import RetailDB

__all__ = ["main", "render_trace"]

_ARROW = {
    "tool_call": "->",
    "tool_error": "-> failed:",
    "interceptor": "-> refused by policy:",
    "approval": "-> not approved:",
}


def _clip(text: str, width: int | None) -> str:
    text = text.replace("\n", " | ")
    return text if width is None or len(text) <= width else text[: width - 3] + "..."


def render_trace(
    events: Sequence[TraceEvent], *, root: str, expected: Mapping[str, str] | None = None, width: int | None = 100
) -> str:
    """Render a run's trace as an indented tree: agents, delegations, tool calls and results.

    Args:
        events: `result.trace`.
        root: The top-level agent's name.
        expected: Reference outputs by call id; calls found here are marked `ok` or `MISMATCH`.
        width: The longest output shown per line (characters), or `None` for all of it.

    Returns:
        The tree, one line per tool call, delegation and final answer.
    """
    first = events[0] if events else None
    lines = [f"{root} (depth 0, task {first.task_id if first else '-'})"]

    def walk(items: Sequence[TraceEvent], level: int) -> None:
        pad = "    " * level
        for event in items:
            if event.kind == "model_request":
                if event.detail:
                    lines.append(f"{pad}{event.agent} answers: {_clip(event.detail, width)}")
            elif event.kind == "delegation":
                lines.append(
                    f"{pad}[{event.call_id}] delegates to {event.agent} (depth {event.depth}, task {event.task_id}, "
                    f"parent {event.parent_task_id}, {event.duration * 1000:.2f} ms)"
                )
                walk(event.children, level + 1)
            elif event.kind == "approval" and event.detail == APPROVED:
                lines.append(f"{pad}[{event.call_id}] {event.tool_name} approved")
            else:
                mark = ""
                if expected is not None and event.call_id is not None and event.call_id in expected:
                    mark = "  ok" if expected[event.call_id] == event.detail else "  MISMATCH"
                arrow = _ARROW.get(event.kind, f"-> {event.kind}:")
                lines.append(
                    f"{pad}[{event.call_id}] {event.tool_name} {arrow} {_clip(event.detail or '', width)}{mark}"
                )

    walk(events, 1)
    return "\n".join(lines)


class _Progress:
    """A one-line progress bar on a terminal (nothing when the output is not a TTY)."""

    def __init__(self, total: int, stream: TextIO) -> None:
        self.total, self.done, self.stream = total, 0, stream
        self.enabled = stream.isatty()

    def advance(self, outcome: TaskOutcome) -> None:
        self.done += 1
        if self.enabled:
            filled = 30 * self.done // self.total
            self.stream.write(f"\r[{'#' * filled}{'.' * (30 - filled)}] {self.done}/{self.total} tasks")
            self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\r" + " " * 60 + "\r")
            self.stream.flush()


def _sample(plans: Sequence[TaskPlan]) -> TaskPlan:
    """Return the first task whose calls involve the most agents of the desk."""
    return max(plans, key=lambda plan: len({OWNER[call.name] for call in plan.calls}))


def _report(outcomes: Sequence[TaskOutcome], seconds: float, out: TextIO) -> bool:
    """Print the replay's numbers and every mismatch; return whether everything matched."""
    gold = sum(len(o.plan.gold_calls) for o in outcomes)
    added = [(o, call) for o in outcomes for call in o.plan.calls if not call.gold]
    added_ok = sum(o.outputs.get(call.call_id) == call.expected for o, call in added)
    tasks_ok = sum(o.matched for o in outcomes)
    calls_ok = sum(o.calls_matched for o in outcomes)
    hashes_ok = sum(o.db_matched for o in outcomes)
    requests = sum(o.result.usage.requests for o in outcomes if o.result is not None)
    tool_calls = sum(o.result.usage.tool_calls for o in outcomes if o.result is not None)
    print(f"tau2 retail: gold actions of {len(outcomes)} task(s) replayed concurrently through the desk", file=out)
    print(f"  tasks matched    {tasks_ok}/{len(outcomes)}", file=out)
    print(f"  calls matched    {calls_ok}/{gold}", file=out)
    print(f"  final DB hashes  {hashes_ok}/{len(outcomes)}", file=out)
    print(f"  identifications  {added_ok}/{len(added)} added where the gold list starts after authentication", file=out)
    print(f"  wall time        {seconds:.3f} s ({len(outcomes) / seconds:.1f} tasks/s)", file=out)
    print(f"  model requests   {requests}; tool calls and delegations {tool_calls}", file=out)
    for o in outcomes:
        if o.matched:
            continue
        print(f"  task {o.plan.task_id} FAILED" + (f": {o.error!r}" if o.error else ""), file=out)
        for call in o.plan.calls:
            got = o.outputs.get(call.call_id)
            if got != call.expected:
                print(f"    [{call.call_id}] {call.name}: expected {_clip(call.expected, 80)!r}, got {got!r}", file=out)
        if not o.db_matched and o.error is None:
            print(f"    final DB {o.final_db_sha256} != {o.plan.final_db_sha256}", file=out)
    return tasks_ok == len(outcomes)


async def _replay(plans: Sequence[TaskPlan], sample: TaskPlan, *, width: int | None, out: TextIO) -> int:
    """Replay `plans` concurrently, print the report and `sample`'s trace; return the exit code."""
    progress = _Progress(len(plans), out)
    started = time.perf_counter()
    outcomes = await replay_all(plans, on_done=progress.advance)
    seconds = time.perf_counter() - started
    progress.close()
    ok = _report(outcomes, seconds, out)
    result = outcomes[plans.index(sample)].result
    if result is not None:
        expected = {call.call_id: call.expected for call in sample.calls}
        print(f"\ntrace of task {sample.task_id}:", file=out)
        print(render_trace(result.trace, root=FRONT_DESK, expected=expected, width=width), file=out)
    return 0 if ok else 1


async def _drive(model: Model, plan: TaskPlan, out: TextIO) -> int:
    """Let a real model run the desk on one task and print the conversation."""
    desk = build_desk(model)
    ctx = RetailContext(db=RetailDB.fresh(), deadline=now_utc() + timedelta(minutes=5))

    def confirm(item: ToolApprovalItem) -> bool:
        print(
            f"  [approval] {item.agent_name} wants {item.tool_name} {item.arguments}: the customer says yes", file=out
        )
        return True

    print(f"customer: {plan.opening}", file=out)
    speaking: str | None = None  # the agent whose streamed text is being printed on the current line
    async with desk.run_stream(plan.opening, context=ctx, approval_handler=confirm) as events:
        async for event in events:
            pad = "    " * getattr(event, "depth", 0)
            if isinstance(event, TextDeltaEvent):
                if speaking != event.agent:
                    print(f"\n{pad}{event.agent}: " if speaking else f"{pad}{event.agent}: ", end="", file=out)
                    speaking = event.agent
                print(event.text, end="", file=out, flush=True)
                continue
            if speaking is not None:
                print(file=out)
                speaking = None
            if isinstance(event, ToolCallEvent):
                print(f"{pad}{event.agent} calls {event.tool_name} {event.arguments}", file=out)
            elif isinstance(event, ToolResultEvent):
                print(f"{pad}  -> {_clip(event.result, 200)}", file=out)
            elif isinstance(event, DelegationStartEvent):
                print(f"{pad}{event.parent} delegates to {event.agent}: {_clip(event.task, 200)}", file=out)
            elif isinstance(event, DelegationEndEvent):
                print(f"{pad}{event.agent} reports: {_clip(event.output, 200)}", file=out)
            elif isinstance(event, FinalResultEvent):
                print(f"\ntrace:\n{render_trace(event.result.trace, root=FRONT_DESK)}", file=out)
    changed = [record for records in ctx.db.changed().values() for record in records]
    same = ctx.db.canonical_sha256() == plan.final_db_sha256
    print(f"\nchanged records: {', '.join(changed) or 'none'}", file=out)
    print(f"final database equals the gold outcome: {'yes' if same else 'no'} (informational, not verified)", file=out)
    return 0


def main(argv: Sequence[str] | None = None, out: TextIO = sys.stdout) -> int:
    """Run the command line.

    Args:
        argv: The arguments (default: `sys.argv[1:]`).
        out: Where the report goes.

    Returns:
        The exit code: 0 if everything matched (with `--model`: if the run finished),
        1 on a mismatch, 2 on a usage error.
    """
    plans = load_plans()
    ids = [plan.task_id for plan in plans]
    parser = argparse.ArgumentParser(
        prog="python -m examples.retail",
        description="Replay the gold actions of the tau2 retail tasks through the cogent desk and verify them.",
    )
    parser.add_argument("--task", metavar="ID", help="replay only this task (0-113) and print its full trace")
    parser.add_argument(
        "--model",
        help="drive the desk with a real model, e.g. openai:gpt-4o-mini, on --task (default 0); needs OPENAI_API_KEY",
    )
    args = parser.parse_args(argv)
    if args.task is not None and args.task not in ids:
        parser.error(f"argument --task: there is no task {args.task!r}; the task ids are {ids[0]} to {ids[-1]}")
    if args.model is None:
        if args.task is None:
            return anyio.run(lambda: _replay(plans, _sample(plans), width=100, out=out))
        one = plans[ids.index(args.task)]
        return anyio.run(lambda: _replay([one], one, width=None, out=out))
    if args.model.startswith("openai:") and not os.environ.get("OPENAI_API_KEY"):
        print(
            f"error: --model {args.model} needs an API key: set OPENAI_API_KEY (and OPENAI_BASE_URL for another "
            "OpenAI-compatible server), or leave out --model to replay the gold actions offline.",
            file=sys.stderr,
        )
        return 2
    try:
        model = infer_model(args.model)
    except (ImportError, UserError) as exc:
        print(f"error: --model {args.model} cannot be used: {exc}", file=sys.stderr)
        return 2
    plan = plans[ids.index(args.task or "0")]
    return anyio.run(lambda: _drive(model, plan, out))
