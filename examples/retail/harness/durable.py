"""The replay as durable runs on DBOS: `python -m examples.retail --durable [--crash-every N]`.

- Every task is a durable run (`cogent.durable.DurableAgent`, run id `retail-<task id>`)
  of its own desk, enqueued on the DBOS queue `retail` of a worker process (`Worker`, 16
  runs at a time). Its replay models answer from the request alone (`PromptReplayModel`):
  a resumed run makes its remaining requests in another process, whose models have seen
  nothing.
- Every task's retail database persists: a SQLite file per task in a work directory
  (default), or a schema per task in one PostgreSQL database (`--database-url`, which also
  holds DBOS's system database, schema `dbos`); DBOS's SQLite system database is the file
  `dbos.sqlite` of the work directory. The context's `db` is a resource: each process that
  executes a run makes the engine of the run's task from the checkpointed state.
- Writes are exactly-once: the context's `write_key` is `cogent.durable.idempotency_key`,
  stored with the write's result in the write's own transaction (see `tools.py`).
- What each tool received and each approval are recorded in the task's database (a
  run-level PRE_ACT interceptor and the approval handler, with inserts that ignore a
  repeat), so the checks hold however many processes the run went through.
- `--crash-every N`: the worker SIGKILLs itself when its count of steps (model requests
  and committed writes) reaches a seeded random number from 1 to 2N - 1 (so after about
  every N-th step): inside a model request before its checkpoint, or right after a
  write's commit before its checkpoint (the write then runs again and finds its key). The
  supervisor starts the worker again (same executor id: DBOS recovers its runs at launch)
  until every run has finished, then reads each result with a `DBOSClient` and checks it
  exactly as the in-memory replay does.
"""

from __future__ import annotations

import asyncio
import hashlib
import multiprocessing
import os
import random
import signal
import sqlite3
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import sqlalchemy as sa

from cogent import Interceptor, ToolApprovalItem
from cogent.core import now_utc
from cogent.interceptors import InterceptContext
from cogent.messages import Message, ModelResponse, UserPrompt
from cogent.models import Model, ModelRequestParameters

from ..context import RetailContext
from ..desk import SPECIALISTS, build_desk
from ..store import WRITES_METADATA, applied_writes
from ..tools import TOOLS
from .database import DatabaseTemplate, load_database
from .hashing import CanonicalHasher
from .replay import ReplayModel, TaskReport, ToolCallRecord, check_task, replay_models
from .tasks import TaskPlan

__all__ = ["DurableReplay", "replay_durably"]

APP, VERSION, QUEUE, EXECUTOR = "retail-durable", "retail-durable-1", "retail", "retail-worker"
"""The DBOS application name, its version, the queue and the worker's executor id."""
DEADLINE = timedelta(hours=1)
"""Each run's deadline, from its first enqueue (restarts included)."""

_harness = sa.MetaData()
received_calls = sa.Table(
    "received_calls",
    _harness,
    sa.Column("call_id", sa.String, primary_key=True),
    sa.Column("agent", sa.String, nullable=False),
    sa.Column("name", sa.String, nullable=False),
    sa.Column("arguments", sa.JSON, nullable=False),
)
approved_calls = sa.Table(
    "approved_calls",
    _harness,
    sa.Column("call_id", sa.String, primary_key=True),
    sa.Column("item", sa.JSON, nullable=False),
)


# --- Where each task's database lives ------------------------------------------------------


class TaskDatabases:
    """The persistent retail database of every task: SQLite files, or PostgreSQL schemas.

    Args:
        directory: The work directory (SQLite files, DBOS's SQLite system database).
        database_url: A PostgreSQL database for the task schemas and DBOS, or `None`.
    """

    def __init__(self, directory: Path, database_url: str | None) -> None:
        self.directory = directory
        self.database_url = database_url
        self._engines: dict[str, sa.Engine] = {}

    @property
    def key(self) -> str:
        """Names this replay's durable agents apart from another replay's in the same process."""
        return hashlib.sha256(f"{self.directory.resolve()}|{self.database_url}".encode()).hexdigest()[:8]

    @property
    def system_url(self) -> str:
        """DBOS's system database."""
        return self.database_url or f"sqlite:///{self.directory / 'dbos.sqlite'}"

    def engine(self, task_id: str) -> sa.Engine:
        """The engine of a task's database (one per task in this process)."""
        engine = self._engines.get(task_id)
        if engine is None:
            if self.database_url is None:
                engine = sa.create_engine(f"sqlite:///{self.directory / f'task-{task_id}.sqlite'}")
            else:
                url = sa.make_url(self.database_url).set(drivername="postgresql+psycopg")
                # The task's schema first on the search path: every statement (the hasher's raw SQL too) uses it.
                engine = sa.create_engine(url, connect_args={"options": f"-c search_path=task_{task_id}"})
            self._engines[task_id] = engine
        return engine

    def prepare(self, task_id: str, template: DatabaseTemplate) -> None:
        """Create a task's database holding the unchanged `db.json`, unless it exists (a restarted replay)."""
        if self.database_url is None:
            path = self.directory / f"task-{task_id}.sqlite"
            if path.exists():
                return
            partial = path.with_suffix(".partial")
            with template.fresh() as memory, memory.connect() as conn:
                copy = sqlite3.connect(partial)
                try:
                    conn.connection.driver_connection.backup(copy)  # type: ignore[union-attr]
                finally:
                    copy.close()
            engine = sa.create_engine(f"sqlite:///{partial}")
            _harness.create_all(engine)
            WRITES_METADATA.create_all(engine)
            engine.dispose()
            partial.rename(path)
            return
        engine = self.engine(task_id)
        with engine.begin() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA IF NOT EXISTS "task_{task_id}"'))
        if not sa.inspect(engine).has_table("received_calls"):
            load_database(engine, template.initial)
            _harness.create_all(engine)
            WRITES_METADATA.create_all(engine)

    def dispose(self) -> None:
        """Close every engine of this process."""
        for engine in self._engines.values():
            engine.dispose()


# --- The desk of one task, durable -------------------------------------------------------


class PromptReplayModel(Model):
    """A `ReplayModel` that finds the conversation from the request alone: its first user prompt.

    The in-memory replay counts an agent's conversations; a durable run resumed in
    another process must make its next request with a model that has seen nothing, so
    this one picks the conversation whose prompt (the front desk's opening, or the task of
    a delegation) opens the request's history.

    Args:
        replay: The task's replay model of the agent.
        prompts: The prompt of each of its conversations, in order.
        on_request: Called on every request this process makes (the crash harness counts them).
    """

    def __init__(self, replay: ReplayModel, prompts: Sequence[str], on_request: Any = None) -> None:
        self.name = replay.name
        self._replay = replay
        self._scripts = {prompt: index for index, prompt in enumerate(prompts)}
        self._on_request = on_request

    async def request(self, messages: list[Message], params: ModelRequestParameters) -> ModelResponse:
        """Return the response of the conversation that the history's first prompt opens."""
        prompt = next(m.content for m in messages if isinstance(m, UserPrompt))
        response = self._replay.answer(self._replay.conversations[self._scripts[prompt]], messages)
        if self._on_request is not None:
            self._on_request()
        return response


def durable_models(plan: TaskPlan, on_request: Any = None) -> dict[str, PromptReplayModel]:
    """Return the desk's replay models of a task, each answering from the request alone."""
    models = replay_models(plan)
    prompts: dict[str, list[str]] = {agent: [] for agent in models}
    prompts["front_desk"].append(plan.opening)
    for response in models["front_desk"].conversations[0]:
        for call in response.tool_calls:
            if call.name in SPECIALISTS:
                assert isinstance(call.arguments, dict)
                prompts[call.name].append(call.arguments["task"])
    for agent, texts in prompts.items():
        if len(set(texts)) != len(texts):
            raise ValueError(f"Task {plan.task_id} delegates the same task twice to {agent}; prompts must differ.")
    return {agent: PromptReplayModel(model, prompts[agent], on_request) for agent, model in models.items()}


class _Recorder(Interceptor):
    """Records every retail tool call as the tool receives it, in the task's database (a repeat is ignored)."""

    def pre_act(self, context: InterceptContext, ctx: RetailContext) -> None:
        if context.tool_name in TOOLS and context.tool_call_id is not None:
            row = {
                "call_id": context.tool_call_id,
                "agent": context.agent.name,
                "name": context.tool_name,
                "arguments": dict(context.tool_args or {}),
            }
            with ctx.db.begin() as conn:
                if conn.scalar(sa.select(sa.func.count()).where(received_calls.c.call_id == row["call_id"])) == 0:
                    conn.execute(received_calls.insert().values(**row))


def _approve(item: ToolApprovalItem, ctx: RetailContext) -> bool:
    """The customer confirmed every write of the gold conversations: approve it, and record that."""
    with ctx.db.begin() as conn:
        if conn.scalar(sa.select(sa.func.count()).where(approved_calls.c.call_id == item.call_id)) == 0:
            conn.execute(approved_calls.insert().values(call_id=item.call_id, item=_item_data(item)))
    return True


def _item_data(item: ToolApprovalItem) -> dict[str, str]:
    return {
        "tool_name": item.tool_name,
        "call_id": item.call_id,
        "arguments": item.arguments,
        "agent_name": item.agent_name,
        "approval_id": item.approval_id,
    }


@dataclass(kw_only=True)
class DurableReplay:
    """The durable agents of a replay, in one process (the supervisor's or a worker's).

    Args:
        plans: The tasks.
        databases: Where their databases live.
        crasher: The worker's kill switch, or `None`.
    """

    plans: Sequence[TaskPlan]
    databases: TaskDatabases
    crasher: Crasher | None = None

    def __post_init__(self) -> None:
        from cogent.durable import DurableAgent

        on_request = self.crasher.step if self.crasher is not None else None
        self.agents = {
            plan.task_id: DurableAgent(
                build_desk(durable_models(plan, on_request)),
                name=f"retail-{self.databases.key}-{plan.task_id}",
                resources=self._resources,
                release=lambda made: None,  # the engines are this process's, one per task
                interceptors=[_Recorder()],
                approval_handler=_approve,
            )
            for plan in self.plans
        }

    def _resources(self, state: Mapping[str, Any]) -> dict[str, Any]:
        from cogent.durable import idempotency_key

        engine = self.databases.engine(state["metadata"]["task"])
        crasher = self.crasher

        def write_key() -> str:
            if crasher is not None:
                crasher.arm(engine)
            return idempotency_key()

        return {"db": engine, "write_key": write_key}

    async def enqueue_all(self) -> None:
        """Put every task's run on the queue (a run already there, or done, is left as it is)."""
        for plan in self.plans:
            ctx = RetailContext(
                db=self.databases.engine(plan.task_id),
                deadline=now_utc() + DEADLINE,
                metadata={"task": plan.task_id},
            )
            await self.agents[plan.task_id].enqueue(plan.opening, queue=QUEUE, context=ctx, run_id=_run_id(plan))

    async def report(self, plan: TaskPlan, client: Any, hasher: CanonicalHasher) -> TaskReport:
        """Check a finished run of `plan` (its result from DBOS, its records from its database)."""
        started = time.perf_counter()
        result, error = None, None
        try:
            result = await self.agents[plan.task_id].result(_run_id(plan), client=client)
        except Exception as exc:
            error = exc
        engine = self.databases.engine(plan.task_id)
        with engine.connect() as conn:
            received = {
                row["call_id"]: ToolCallRecord(**row) for row in conn.execute(sa.select(received_calls)).mappings()
            }
            approvals = [ToolApprovalItem(**row.item) for row in conn.execute(sa.select(approved_calls))]
        final = None if error else await anyio.to_thread.run_sync(_hash, engine, hasher)
        return check_task(
            plan,
            result=result,
            error=error,
            received=received,
            approvals=approvals,
            final_db_sha256=final,
            user_id=result.context.session.user_id if result is not None else None,
            seconds=time.perf_counter() - started,
        )


def _run_id(plan: TaskPlan) -> str:
    return f"retail-{plan.task_id}"


def _hash(engine: sa.Engine, hasher: CanonicalHasher) -> str:
    with engine.connect() as conn:
        return hasher.sha256(conn)


# --- The worker and its kill switch ------------------------------------------------------


class Crasher:
    """Kills this process (SIGKILL) at its `threshold`-th step: a model request, or a write's commit.

    Args:
        threshold: The step to die at.
        log: Where the kind of step it died at is noted first.
    """

    def __init__(self, threshold: int, log: Path) -> None:
        self.threshold, self.log, self.steps = threshold, log, 0
        self._listened: set[int] = set()
        self._writing: set[int] = set()

    def step(self, what: str = "model request") -> None:
        """Count one step; die if it is the chosen one."""
        self.steps += 1
        if self.steps == self.threshold:
            with self.log.open("a") as log:
                log.write(f"{what}\n")
            os.kill(os.getpid(), signal.SIGKILL)

    def arm(self, engine: sa.Engine) -> None:
        """Count the write about to run on `engine` as a step once it committed (when its connection comes back).

        The recorder's and the handler's transactions come before the write's, in the same
        task, so the next connection back to the task's engine is the write's.
        """
        if id(engine) not in self._listened:
            self._listened.add(id(engine))
            sa.event.listen(engine, "checkin", lambda *args: self._checked_in(id(engine)))
        self._writing.add(id(engine))

    def _checked_in(self, engine_id: int) -> None:
        if engine_id in self._writing:
            self._writing.discard(engine_id)
            self.step("write")


async def _work(replay: DurableReplay) -> None:
    from cogent.durable import Worker, durable_config

    config = durable_config(
        APP,
        replay.databases.system_url,
        executor_id=EXECUTOR,
        application_version=VERSION,
        log_level="ERROR",
        notification_listener_polling_interval_sec=0.1,
    )
    async with Worker(config, queue=QUEUE, concurrency=16, polling_interval=0.1):
        await replay.enqueue_all()
        for plan in replay.plans:
            try:
                await replay.agents[plan.task_id].result(_run_id(plan))
            except Exception:  # a failed run is reported by the supervisor
                continue


def _worker(
    plans: Sequence[TaskPlan], directory: Path, database_url: str | None, crash_every: int, seed: int, attempt: int
) -> None:
    """The worker process: run the replay's durable runs until all have finished (or the kill switch fires)."""
    from dbos import DBOS

    crasher = None
    if crash_every:
        rng = random.Random(f"{seed}:{attempt}")
        crasher = Crasher(rng.randint(1, 2 * crash_every - 1), directory / "crashes.log")
    databases = TaskDatabases(directory, database_url)
    replay = DurableReplay(plans=plans, databases=databases, crasher=crasher)
    try:
        asyncio.run(_work(replay))
    finally:
        DBOS.destroy()
        databases.dispose()


# --- The supervisor ------------------------------------------------------------------------


@dataclass(kw_only=True, frozen=True)
class DurableOutcome:
    """What a durable replay did."""

    reports: list[TaskReport]
    """One report per task, in plan order."""
    crashes: list[str]
    """What each crash of the worker interrupted: `model request` or `write` (its commit)."""
    writes_made: int
    """The writes the tasks' databases record as made (`applied_writes`: one row per write, made once)."""
    seconds: float
    """Wall time of the whole replay, restarts included."""


def replay_durably(
    plans: Sequence[TaskPlan],
    template: DatabaseTemplate,
    directory: Path,
    *,
    database_url: str | None = None,
    crash_every: int = 0,
    seed: int = 0,
    max_crashes: int = 1000,
) -> DurableOutcome:
    """Replay tasks as durable runs in worker processes, restarting each killed one, then check every run.

    Args:
        plans: The tasks.
        template: The unchanged database, copied into each task's.
        directory: The work directory (a replay with the same directory continues).
        database_url: PostgreSQL for the tasks' databases and DBOS, or `None` for SQLite files.
        crash_every: Kill the worker after about every N-th step (0: never).
        seed: Seeds the kill points.
        max_crashes: Give up after this many crashes.

    Returns:
        The reports, the crashes and the wall time.

    Raises:
        RuntimeError: If a worker fails other than by the kill switch, or crashes too often.
    """
    started = time.perf_counter()
    databases = TaskDatabases(directory, database_url)
    for plan in plans:
        databases.prepare(plan.task_id, template)
    databases.dispose()  # a forked worker must not share the supervisor's connections
    # Fork (no re-import) from a single-threaded supervisor such as the command line; else spawn.
    processes = multiprocessing.get_context("fork" if threading.active_count() == 1 else "spawn")
    attempt = 0
    while True:
        worker = processes.Process(
            target=_worker, args=(plans, directory, database_url, crash_every, seed, attempt), name="retail-worker"
        )
        worker.start()
        worker.join()
        if worker.exitcode == 0:
            break
        if worker.exitcode != -signal.SIGKILL or not crash_every:
            raise RuntimeError(f"The durable replay's worker failed with exit code {worker.exitcode}.")
        attempt += 1
        if attempt > max_crashes:
            raise RuntimeError(f"The durable replay's worker crashed {attempt} times; giving up.")
    crashes_log = directory / "crashes.log"
    crashes = crashes_log.read_text().splitlines() if crashes_log.exists() else []
    reports = anyio.run(_reports, plans, databases)
    made = _writes_made(databases, plans)
    databases.dispose()
    return DurableOutcome(reports=reports, crashes=crashes, writes_made=made, seconds=time.perf_counter() - started)


async def _reports(plans: Sequence[TaskPlan], databases: TaskDatabases) -> list[TaskReport]:
    from dbos import DBOSClient, DBOSPortableJSONSerializer

    replay = DurableReplay(plans=plans, databases=databases)
    client = DBOSClient(
        system_database_url=databases.system_url, serializer=DBOSPortableJSONSerializer(), application_name=APP
    )
    try:
        hasher = CanonicalHasher()
        return [await replay.report(plan, client, hasher) for plan in plans]
    finally:
        client.destroy()


def _writes_made(databases: TaskDatabases, plans: Sequence[TaskPlan]) -> int:
    total = 0
    for plan in plans:
        with databases.engine(plan.task_id).connect() as conn:
            total += int(conn.scalar(sa.select(sa.func.count()).select_from(applied_writes)) or 0)
    return total
