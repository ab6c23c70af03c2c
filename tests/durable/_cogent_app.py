"""A cogent application with a durable agent, run by the tests in subprocesses to crash it for real.

Run it from `tests/` as `python -m durable._cogent_app COMMAND --db URL --executor ID ...`;
it prints one JSON line (the command's result) on stdout. The agent `desk` (model scripted
per agent name) makes a multi-turn run: a lookup and an exactly-once note in parallel, a
delegation to the subagent `clerk` (which stamps), a refund that needs approval, a second
note, then its answer. Its context has state (`user_id`, lineage, metadata) and a resource
(a live SQLite connection to the app's database, `COGENT_APP_DB`), made fresh by the
resource factory in every process that resumes the run.

Every model request and tool execution appends a line `<kind> <key> <pid>` to
`COGENT_TEST_LOG` (fsynced) before it returns, so a test counts executions across
processes; `<key>` is `idempotency_key()` (`<workflow id>:<step id>`); the resource factory
logs `factory <user id> <pid>` lines, which are not executions. Kill switch:
`COGENT_KILL_AT=k` makes the process SIGKILL itself at the k-th logged execution,
with `COGENT_KILL_MODE=in` inside that step (after its side effect, before its checkpoint)
or `after` (right after its checkpoint, from the POST_THINK/POST_ACT interceptor of the same
workflow).
`COGENT_APPROVAL=wait` leaves the refund's approval to `approve()` from another process
(else an approval handler approves it, as a checkpointed step).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sqlite3
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

from dbos import DBOS

from cogent import Agent, ExecutionContext, tool
from cogent._context_state import dump_state
from cogent.context import Resource
from cogent.durable import DurableAgent, Worker, durable_config, idempotency_key
from cogent.interceptors import InterceptContext, Interceptor
from cogent.messages import Message, ModelResponse, ToolCall
from cogent.models import FunctionModel, ModelRequestParameters
from cogent.usage import Usage

APP_NAME = "cogent-durable-app"
APP_VERSION = "cogent-durable-app-v1"
QUEUE = "desk-runs"

_die_after_checkpoint: str | None = None
"""The workflow whose next POST_THINK/POST_ACT kills the process (a parent replaying in the same process
runs its own interceptors meanwhile, before the child's step is checkpointed)."""


def _log() -> Path:
    return Path(os.environ.get("COGENT_TEST_LOG", os.devnull))


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _executed(kind: str, key: str) -> None:
    """Log one execution; kill this process if it is the chosen one."""
    global _die_after_checkpoint
    with _log().open("a") as log:
        log.write(f"{kind} {key} {os.getpid()}\n")
        log.flush()
        os.fsync(log.fileno())
    kill_at = int(os.environ.get("COGENT_KILL_AT", "0"))
    executions = [line for line in _log().read_text().splitlines() if not line.startswith("factory ")]
    if kill_at and len(executions) == kill_at:
        if os.environ.get("COGENT_KILL_MODE", "in") == "in":
            _die()
        _die_after_checkpoint = DBOS.workflow_id


@dataclass
class ShopContext(ExecutionContext):
    """State: the user, lineage, metadata. Resource: a connection to the app's database."""

    user_id: str = ""
    db: Annotated[sqlite3.Connection | None, Resource] = None


def connect() -> sqlite3.Connection:
    """Open the app's database (autocommit; writes use explicit transactions)."""
    db = sqlite3.connect(os.environ.get("COGENT_APP_DB", ":memory:"), isolation_level=None, timeout=30)
    db.execute("CREATE TABLE IF NOT EXISTS writes (key TEXT PRIMARY KEY, kind TEXT, value TEXT)")
    return db


def make_resources(state: Mapping[str, Any]) -> dict[str, Any]:
    """The resource factory: a fresh connection, in whichever process runs the workflow."""
    with _log().open("a") as log:
        log.write(f"factory {state['user_id']} {os.getpid()}\n")
    return {"db": connect()}


def release(resources: Mapping[str, Any]) -> None:
    """Close what the factory opened."""
    resources["db"].close()


def write_once(ctx: ShopContext, kind: str, value: str) -> None:
    """Write one row exactly once: the call's idempotency key is the primary key, in the same transaction."""
    assert ctx.db is not None
    ctx.db.execute("BEGIN IMMEDIATE")
    ctx.db.execute("INSERT OR IGNORE INTO writes VALUES (?, ?, ?)", (idempotency_key(), kind, value))
    ctx.db.execute("COMMIT")


async def _pause() -> None:
    seconds = float(os.environ.get("COGENT_STEP_SECONDS", "0"))
    if seconds:
        await asyncio.sleep(seconds)


@tool
async def lookup(ctx: ShopContext, order_id: str) -> str:
    """Look up an order."""
    await _pause()
    _executed("tool", idempotency_key())
    return f"order {order_id} of {ctx.user_id}: delivered"


@tool
async def add_note(ctx: ShopContext, text: str) -> str:
    """Add a note to the case (exactly once)."""
    await _pause()
    write_once(ctx, "note", text)
    ctx.metadata["notes"] = [*ctx.metadata.get("notes", []), text]
    _executed("tool", idempotency_key())
    return f"noted: {text}"


@tool(requires_approval=True)
async def refund(ctx: ShopContext, order_id: str) -> str:
    """Refund an order (exactly once; needs approval)."""
    await _pause()
    write_once(ctx, "refund", order_id)
    _executed("tool", idempotency_key())
    return f"refunded {order_id}"


@tool
async def stamp(ctx: ShopContext, text: str) -> str:
    """Stamp a document."""
    await _pause()
    ctx.metadata["stamped"] = text
    _executed("tool", idempotency_key())
    return f"stamped {text}"


SCRIPTS: dict[str, list[str | list[ToolCall]]] = {
    "desk": [
        [ToolCall("lookup", {"order_id": "o-1"}), ToolCall("add_note", {"text": "first"})],
        [ToolCall("clerk", {"task": "stamp the form of o-1"})],
        [ToolCall("refund", {"order_id": "o-1"})],
        [ToolCall("add_note", {"text": "second"})],
        "Order o-1 refunded.",
    ],
    "clerk": [[ToolCall("stamp", {"text": "o-1"})], "stamped o-1"],
}


async def scripted(messages: list[Message], params: ModelRequestParameters) -> ModelResponse:
    """The model: the agent's script, one step per response so far; logs its execution."""
    await _pause()
    turn = sum(isinstance(m, ModelResponse) for m in messages)
    reply = SCRIPTS[params.agent_name][turn]
    usage = Usage(input_tokens=10 * len(messages), output_tokens=turn + 1)
    _executed("model", idempotency_key())
    if isinstance(reply, str):
        return ModelResponse(text=reply, usage=usage)
    return ModelResponse(tool_calls=list(reply), usage=usage)


class DieAfterCheckpoint(Interceptor):
    """Kills the process right after a step's checkpoint, when the kill switch chose that step."""

    def post_think(self, context: InterceptContext) -> None:
        """After a model step."""
        if _die_after_checkpoint is not None and _die_after_checkpoint == DBOS.workflow_id:
            _die()

    def post_act(self, context: InterceptContext) -> None:
        """After a tool step."""
        if _die_after_checkpoint is not None and _die_after_checkpoint == DBOS.workflow_id:
            _die()


model = FunctionModel(scripted, name="scripted")
clerk = Agent(name="clerk", model=model, tools=[stamp], context_type=ShopContext, description="Stamps forms.")
desk = Agent(name="desk", model=model, tools=[lookup, add_note, refund], subagents=[clerk], context_type=ShopContext)
durable = DurableAgent(
    desk,
    resources=make_resources,
    release=release,
    interceptors=[DieAfterCheckpoint()],
    approval_handler=lambda item: True,
)
"""The durable desk: a handler approves the refund (a checkpointed step)."""
waiting = DurableAgent(desk, name="desk-waiting", resources=make_resources, release=release)
"""The same desk without a handler: the refund waits for `approve()`/`reject()` from anywhere."""


def _durable() -> DurableAgent[ShopContext, str]:
    return waiting if os.environ.get("COGENT_APPROVAL") == "wait" else durable


def new_context() -> ShopContext:
    """The run's context, the same in every process (fixed ids and times)."""
    started = datetime(2030, 1, 1, tzinfo=UTC)
    return ShopContext(user_id="u-7", task_id="case-1", started_at=started, metadata={"case": "c-1"}, db=connect())


def trace_lines(events: Sequence[Any], depth: int = 0) -> list[str]:
    """The trace without timings: one line per event."""
    lines = []
    for e in events:
        error = f"{type(e.error).__name__}: {e.error}" if e.error is not None else ""
        lines.append(
            f"{'  ' * depth}{e.kind} {e.agent} {e.tool_name} {e.call_id} {e.task_id} {e.parent_task_id} "
            f"{e.decision} {e.detail} {e.usage} {error}"
        )
        lines.extend(trace_lines(e.children, depth + 1))
    return lines


def summary(result: Any) -> dict[str, Any]:
    """What the tests compare between runs: everything a user sees, but timings."""
    db = connect()
    try:
        writes = sorted(db.execute("SELECT key, kind, value FROM writes").fetchall())
    finally:
        db.close()
    return {
        "output": result.output,
        "usage": [
            result.usage.requests,
            result.usage.input_tokens,
            result.usage.output_tokens,
            result.usage.tool_calls,
        ],
        "trace": trace_lines(result.trace),
        "state": json.loads(dump_state(result.context)),
        "writes": writes,
        "messages": len(result.messages),
    }


def configure(url: str, executor_id: str) -> None:
    """Create the DBOS singleton."""
    DBOS(
        config=durable_config(
            APP_NAME,
            url,
            executor_id=executor_id,
            application_version=APP_VERSION,
            log_level="WARNING",
            notification_listener_polling_interval_sec=0.05,
            sys_db_pool_size=5,
        )
    )


async def run(args: argparse.Namespace) -> Any:
    """Run the case durably in this process."""
    DBOS.launch()
    return summary(await _durable().run("Refund order o-1", context=new_context(), run_id=args.run_id))


async def recover(args: argparse.Namespace) -> Any:
    """Launch (recovering this executor's runs) and wait for the run's result."""
    DBOS.launch()
    return summary(await _durable().result(args.run_id))


async def worker(args: argparse.Namespace) -> Any:
    """Serve the queue until stdin closes."""
    async with Worker(
        durable_config(
            APP_NAME,
            args.db,
            executor_id=args.executor,
            application_version=APP_VERSION,
            log_level="WARNING",
            notification_listener_polling_interval_sec=0.05,
            sys_db_pool_size=5,
        ),
        queue=QUEUE,
        concurrency=args.concurrency,
        polling_interval=0.1,
        heartbeat_interval=0.2,
        dead_after=1.5,
    ):
        print("ready", flush=True)
        await asyncio.to_thread(sys.stdin.read)
    return "stopped"


COMMANDS = {"run": run, "recover": recover, "worker": worker}


def main(argv: Sequence[str] | None = None) -> None:
    """Parse the command line, run the command on asyncio, print its result as JSON."""
    parser = argparse.ArgumentParser()
    parser.add_argument("command", choices=sorted(COMMANDS))
    parser.add_argument("--db", required=True)
    parser.add_argument("--executor", required=True)
    parser.add_argument("--run-id", default="case-1")
    parser.add_argument("--concurrency", type=int, default=2)
    args = parser.parse_args(argv)
    if args.command != "worker":
        configure(args.db, args.executor)
    try:
        result = asyncio.run(COMMANDS[args.command](args))
    finally:
        DBOS.destroy()
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
