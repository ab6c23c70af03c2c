"""A small DBOS application that the durable tests run in subprocesses, to crash and recover it for real.

Run it from `tests/` as `python -m durable._dbos_app COMMAND --db URL --executor ID ...`.
It prints the command's result as one JSON line on stdout. Every step appends one line,
`<workflow id> <step> <executor id> <pid> <counted workflows running in the process>`, to
the file named by `COGENT_TEST_LOG` before it returns, so a test can count executions
across processes (`COGENT_STEP_SECONDS` makes each step sleep first). Environment
variables make a process kill itself with SIGKILL at a chosen point (they are set only
for the process that must die):

- `COGENT_KILL_AFTER_STEP=i`: in the workflow body, right after step i is checkpointed;
- `COGENT_KILL_IN_STEP=i`: inside step i, after its side effect, before its checkpoint;
- `COGENT_KILL_AT_WAIT=1`: once the approval workflow waits for its decision.

`COGENT_BRANCH=b` changes the first step of the `branching` workflow (non-determinism),
and `COGENT_WAIT_SECONDS` is the approval wait's timeout.

The `stateful` workflow shows the context split at work: its input is a context's JSON
state (`cogent._context_state.dump_state`), it restores the context with a fresh
database connection in whichever process runs it, each step returns the context's new
state as its checkpoint, and the workflow loads that state after each step, so a resumed
run's context catches up with what replayed steps had changed.

The configuration is the one the cogent integration will use: PostgreSQL or SQLite
system database, a fixed application version (so any process of this code may recover
any workflow), an explicit executor id, and DBOS's portable JSON serializer (no pickle).

Workers (`worker`) also run `ExecutorLiveness`: the recipe for distribution without DBOS
Conductor. Each worker heartbeats into a table of the system database; a worker that
sees another's heartbeat stop re-enqueues that executor's PENDING workflows with
`DBOS._recover_pending_workflows([dead])`, and whichever worker has room on the queue
dequeues and finishes them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sqlite3
import sys
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import psycopg
from dbos import DBOS, DBOSConfig, DBOSPortableJSONSerializer, SetWorkflowID

from cogent import ExecutionContext
from cogent._context_state import dump_state, load_state, restore
from cogent._resources import Resource

from ._support import APP_NAME, APP_VERSION, APPROVAL_TOPIC, PENDING_EVENT, QUEUE

_LOG = Path(os.environ.get("COGENT_TEST_LOG", os.devnull))
_STEP_SECONDS = float(os.environ.get("COGENT_STEP_SECONDS", "0"))


def _env_int(name: str) -> int | None:
    value = os.environ.get(name)
    return int(value) if value else None


def _die() -> None:
    """Kill this process the hard way: no cleanup, no flush, as a crash would."""
    os.kill(os.getpid(), signal.SIGKILL)


def _record(line: str) -> None:
    with _LOG.open("a") as log:
        log.write(line + "\n")
        log.flush()
        os.fsync(log.fileno())


# --- Workflows (registered at import, before DBOS.launch) ---------------------------


_running = 0  # `counted` workflows running in this process right now


@DBOS.step(name="side_effect")
async def side_effect(workflow_id: str, index: int) -> str:
    """One step: sleep (to be killable mid-run), record its execution, return a JSON string."""
    if _STEP_SECONDS:
        await asyncio.sleep(_STEP_SECONDS)
    _record(f"{workflow_id} {index} {DBOS.executor_id} {os.getpid()} {_running}")
    if _env_int("COGENT_KILL_IN_STEP") == index:
        _die()
    return json.dumps({"step": index, "workflow": workflow_id})


@DBOS.workflow(name="counted")
async def counted(steps: int) -> list[str]:
    """Run `steps` steps in order and return their outputs."""
    global _running
    workflow_id = DBOS.workflow_id
    assert workflow_id is not None
    outputs = []
    _running += 1
    try:
        for index in range(steps):
            outputs.append(await side_effect(workflow_id, index))
            if _env_int("COGENT_KILL_AFTER_STEP") == index:
                _die()
    finally:
        _running -= 1
    return outputs


@DBOS.workflow(name="delegating")
async def delegating(steps: int) -> list[str]:
    """Step 0, then a child `counted` workflow with the id `<parent id>/call-1`, then step 1."""
    workflow_id = DBOS.workflow_id
    assert workflow_id is not None
    first = await side_effect(workflow_id, 0)
    with SetWorkflowID(f"{workflow_id}/call-1"):
        child = await DBOS.start_workflow_async(counted, steps)
    child_outputs = await child.get_result()
    return [first, *child_outputs, await side_effect(workflow_id, 1)]


@DBOS.workflow(name="approval_flow")
async def approval_flow(tool_name: str) -> str:
    """A model step, then a durable wait for an approval of `tool_name`, then the tool step if approved."""
    workflow_id = DBOS.workflow_id
    assert workflow_id is not None
    await side_effect(workflow_id, 0)
    await DBOS.set_event_async(PENDING_EVENT, {"tool_name": tool_name, "call_id": f"{workflow_id}:1"})
    if os.environ.get("COGENT_KILL_AT_WAIT"):
        _die()
    decision = await DBOS.recv_async(APPROVAL_TOPIC, timeout_seconds=float(os.environ.get("COGENT_WAIT_SECONDS", 600)))
    if decision is None:
        return "timed out"
    if not decision["approved"]:
        return f"rejected by {decision['by']}"
    await side_effect(workflow_id, 1)
    return f"approved by {decision['by']}"


@DBOS.step(name="step_a")
async def step_a() -> str:
    """The first step of the `branching` workflow on branch `a`."""
    return "a"


@DBOS.step(name="step_b")
async def step_b() -> str:
    """The first step of the `branching` workflow on branch `b`."""
    return "b"


@DBOS.workflow(name="branching")
async def branching() -> str:
    """Runs `step_a` or `step_b` first depending on the environment: non-deterministic on purpose."""
    first = await (step_a() if os.environ.get("COGENT_BRANCH", "a") == "a" else step_b())
    if _env_int("COGENT_KILL_AFTER_STEP") == 0:
        _die()
    return first + await step_a()


@dataclass
class ShopContext(ExecutionContext):
    """A run context with state (ids, lineage, metadata) and a resource (a live database connection)."""

    user_id: str = ""
    db: Annotated[sqlite3.Connection | None, Resource] = None


def connect(state: Mapping[str, Any]) -> dict[str, Any]:
    """The resource factory: a fresh connection in whichever process runs the workflow."""
    return {"db": sqlite3.connect(":memory:")}


async def add_item(ctx: ShopContext, index: int) -> str:
    """A tool call that changes the context's state and uses its resource; returns the state as its checkpoint."""
    assert ctx.db is not None and ctx.db.execute("SELECT 1").fetchone() == (1,)
    ctx.metadata["items"] = [*ctx.metadata.get("items", []), index]
    ctx.retry_count = index
    _record(f"{DBOS.workflow_id} {index} {DBOS.executor_id} {os.getpid()} 0")
    return dump_state(ctx)


@DBOS.workflow(name="stateful")
async def stateful(state: str, steps: int) -> str:
    """Restore the context from JSON state, run `steps` state-changing steps, return the final state.

    After each step the context loads the step's checkpointed state: a no-op when the step
    just ran, and what brings a resumed run's context up to date when the step is replayed.
    """
    ctx = restore(ShopContext, state, resources=connect)
    for index in range(steps):
        load_state(ctx, await DBOS.run_step_async({"name": "add_item"}, add_item, ctx, index))
        if _env_int("COGENT_KILL_AFTER_STEP") == index:
            _die()
    assert ctx.db is not None
    ctx.db.close()
    return dump_state(ctx)


INITIAL_SHOP_STATE = dump_state(
    ShopContext(user_id="u-1", task_id="task-1", started_at=datetime(2030, 1, 1, tzinfo=UTC), metadata={"cart": "c-9"})
)


# --- Distribution: executor liveness ------------------------------------------------


class ExecutorLiveness:
    """Heartbeats this executor; recovers the PENDING workflows of executors whose heartbeat stopped.

    Without DBOS Conductor nothing notices that an executor died: its PENDING workflows
    keep its executor id and wait for a process with that id to launch. This thread
    writes `now()` for this executor every `interval` seconds into
    `cogent_executors`, and re-enqueues the workflows of every executor silent for
    `dead_after` seconds. `FOR UPDATE SKIP LOCKED` makes exactly one live worker reap a
    dead one; the database clock is the only clock used.
    """

    def __init__(self, url: str, executor_id: str, *, interval: float = 0.2, dead_after: float = 1.5) -> None:
        self._url, self._executor_id = url, executor_id
        self._interval, self._dead_after = interval, dead_after
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="executor-liveness", daemon=True)

    def start(self) -> None:
        with psycopg.connect(self._url, autocommit=True) as connection:
            connection.execute(
                "CREATE TABLE IF NOT EXISTS cogent_executors (executor_id text PRIMARY KEY, heartbeat_at timestamptz)"
            )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        with psycopg.connect(self._url, autocommit=True) as connection:
            while not self._stop.wait(self._interval):
                connection.execute(
                    "INSERT INTO cogent_executors VALUES (%s, now()) "
                    "ON CONFLICT (executor_id) DO UPDATE SET heartbeat_at = now()",
                    (self._executor_id,),
                )
                with connection.transaction():
                    dead = connection.execute(
                        "SELECT executor_id FROM cogent_executors "
                        "WHERE heartbeat_at < now() - make_interval(secs => %s) FOR UPDATE SKIP LOCKED",
                        (self._dead_after,),
                    ).fetchall()
                    for (executor_id,) in dead:
                        recovered = DBOS._recover_pending_workflows([executor_id])
                        _record(f"reaped {executor_id} by {self._executor_id}: {len(recovered)} workflows")
                        connection.execute("DELETE FROM cogent_executors WHERE executor_id = %s", (executor_id,))


# --- Commands -----------------------------------------------------------------------


def configure(url: str, executor_id: str) -> None:
    """Create the DBOS singleton the way the cogent integration will."""
    config: DBOSConfig = {
        "name": APP_NAME,
        "system_database_url": url,
        "executor_id": executor_id,
        "application_version": APP_VERSION,
        "serializer": DBOSPortableJSONSerializer(),
        "log_level": "WARNING",
        "notification_listener_polling_interval_sec": 0.05,
        "sys_db_pool_size": 5,
    }
    DBOS(config=config)


async def run(args: argparse.Namespace) -> Any:
    """Start a workflow with id `--workflow-id` in this process and wait for its result."""
    DBOS.launch()
    workflows: dict[str, Any] = {"counted": counted, "delegating": delegating, "branching": branching}
    with SetWorkflowID(args.workflow_id):
        if args.workflow == "approval_flow":
            handle = await DBOS.start_workflow_async(approval_flow, args.tool)
        elif args.workflow == "stateful":
            handle = await DBOS.start_workflow_async(stateful, INITIAL_SHOP_STATE, args.steps)
        elif args.workflow == "branching":
            handle = await DBOS.start_workflow_async(branching)
        else:
            handle = await DBOS.start_workflow_async(workflows[args.workflow], args.steps)
    return await handle.get_result()


async def recover(args: argparse.Namespace) -> Any:
    """Launch (which recovers this executor's PENDING workflows) and wait for `--workflow-id`'s result."""
    DBOS.launch()
    handle = await DBOS.retrieve_workflow_async(args.workflow_id)
    return await handle.get_result(polling_interval_sec=0.05)


async def worker(args: argparse.Namespace) -> Any:
    """Dequeue and run workflows from the `runs` queue until stdin closes; heartbeat and reap dead peers."""
    DBOS.launch()
    await DBOS.register_queue_async(QUEUE, worker_concurrency=args.concurrency)
    liveness = ExecutorLiveness(args.db, args.executor)
    liveness.start()
    print("ready", flush=True)
    await asyncio.to_thread(sys.stdin.read)
    liveness.stop()
    return "stopped"


COMMANDS = {"run": run, "recover": recover, "worker": worker}


def main() -> None:
    """Parse the command line, run the command on an asyncio loop, print its result as JSON."""
    parser = argparse.ArgumentParser()
    parser.add_argument("command", choices=sorted(COMMANDS))
    parser.add_argument("--db", required=True)
    parser.add_argument("--executor", required=True)
    parser.add_argument("--workflow", default="counted")
    parser.add_argument("--workflow-id")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--tool", default="refund")
    parser.add_argument("--concurrency", type=int, default=2)
    args = parser.parse_args()
    configure(args.db, args.executor)
    try:
        result = asyncio.run(COMMANDS[args.command](args))
    finally:
        DBOS.destroy()
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
