"""DBOS mechanics the durable runner relies on, pinned in-process (dbos 3.4: an upgrade that changes one fails here).

Configuration and lifecycle (SQLite file or PostgreSQL; launch, destroy, launch again in
one process; registration at import), async workflows and steps (asyncio only: trio is
refused), checkpointed step outputs replayed instead of re-run, how outputs are
serialized (pickle by default, JSON with `DBOSPortableJSONSerializer`), child workflows
under deterministic ids, and step ids of concurrent steps.
"""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
import psycopg
import pytest
import trio
from dbos import DBOS, DBOSConfig, DBOSPortableJSONSerializer, PortableWorkflowError, SetWorkflowID
from dbos import error as dbos_errors

pytestmark = pytest.mark.anyio

CALLS: Counter[str] = Counter()


@DBOS.step(name="mechanics.add")
async def add(a: int, b: int) -> int:
    """A step that counts its executions."""
    CALLS["add"] += 1
    return a + b


@DBOS.step(name="mechanics.pause")
async def pause(seconds: float, label: str) -> str:
    """A step that sleeps, then returns its label."""
    await asyncio.sleep(seconds)
    return label


@DBOS.step(name="mechanics.fail")
async def fail() -> str:
    """A step that raises."""
    CALLS["fail"] += 1
    raise ValueError("the tool broke")


@DBOS.step(name="mechanics.opaque")
async def opaque() -> object:
    """A step that returns an object with no JSON form."""
    CALLS["opaque"] += 1
    return object()


@DBOS.workflow(name="mechanics.three_steps")
async def three_steps(x: int) -> int:
    """Three steps in sequence."""
    return await add(await add(x, 1), await add(x, 2))


@DBOS.workflow(name="mechanics.child")
async def child(x: int) -> int:
    """A child workflow of one step."""
    return await add(x, 10)


@DBOS.workflow(name="mechanics.parent")
async def parent(call_id: str) -> int:
    """Starts `child` under the id `<parent id>/<call_id>` and awaits it."""
    with SetWorkflowID(f"{DBOS.workflow_id}/{call_id}"):
        handle = await DBOS.start_workflow_async(child, 1)
    return await handle.get_result()


@DBOS.workflow(name="mechanics.concurrent")
async def concurrent() -> list[str]:
    """Starts three steps in order in an anyio task group; the first started finishes last."""
    done: list[str] = []

    async def run(seconds: float, label: str) -> None:
        done.append(await pause(seconds, label))

    async with anyio.create_task_group() as group:
        for seconds, label in ((0.06, "first"), (0.03, "second"), (0.0, "third")):
            group.start_soon(run, seconds, label)
    return done


async def model_request(prompt: str) -> str:
    """An undecorated coroutine, run as a step with `DBOS.run_step_async` (as the runner will run tools)."""
    CALLS["model_request"] += 1
    return f"answer to {prompt}"


@DBOS.workflow(name="mechanics.ad_hoc_steps")
async def ad_hoc_steps() -> list[str]:
    """Two steps from plain coroutines, named at the call site."""
    first = await DBOS.run_step_async({"name": "model_request"}, model_request, "a")
    second = await DBOS.run_step_async({"name": "tool:lookup"}, model_request, "b")
    return [first, second]


@DBOS.workflow(name="mechanics.catching")
async def catching() -> str:
    """Calls a failing step and returns what it caught."""
    try:
        await fail()
    except Exception as error:
        return f"{type(error).__name__}: {error}"
    return "no error"


@DBOS.workflow(name="mechanics.opaque_flow")
async def opaque_flow() -> str:
    """Calls the step whose output has no JSON form."""
    await opaque()
    return "unreachable with the JSON serializer"


@pytest.fixture
def anyio_backend() -> str:
    """DBOS runs async workflows on asyncio only (see `test_async_workflows_are_refused_under_trio`)."""
    return "asyncio"


def _config(url: str, **extra: Any) -> DBOSConfig:
    return {
        "name": "cogent-mechanics",
        "system_database_url": url,
        "log_level": "WARNING",
        "notification_listener_polling_interval_sec": 0.05,  # destroy() waits for this poller
        **extra,  # type: ignore[typeddict-item]
    }


@contextmanager
def launched(url: str, **extra: Any) -> Iterator[str]:
    """Construct and launch DBOS on `url`, destroy it on exit; yield the URL."""
    DBOS(config=_config(url, **extra))
    DBOS.launch()
    try:
        yield url
    finally:
        DBOS.destroy()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> Iterator[str]:
    """A launched DBOS on a SQLite system database in the test's temp dir (default serializer)."""
    with launched(f"sqlite:///{tmp_path / 'dbos.sqlite'}") as url:
        yield url


def _outputs(url: str, workflow_id: str) -> list[tuple[int, str, str | None, str | None]]:
    """Read (function id, name, stored output, serialization) of a workflow's steps from the SQLite system database."""
    with sqlite3.connect(url.removeprefix("sqlite:///")) as connection:
        rows = connection.execute(
            "SELECT function_id, function_name, output, serialization FROM operation_outputs "
            "WHERE workflow_uuid = ? ORDER BY function_id",
            (workflow_id,),
        ).fetchall()
    return [tuple(row) for row in rows]


def test_importing_cogent_does_not_import_dbos() -> None:
    """`import cogent` (with its context-state module) leaves dbos, sqlalchemy and psycopg unimported."""
    code = (
        "import sys, cogent, cogent._context_state, cogent._resources;"
        "print(sorted(m for m in ('dbos', 'sqlalchemy', 'psycopg') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


async def test_completed_steps_are_replayed_not_run_again(sqlite_url: str) -> None:
    """A workflow id that already ran returns its recorded output; its steps do not run again."""
    CALLS.clear()
    with SetWorkflowID("replay"):
        assert await three_steps(5) == 13
    with SetWorkflowID("replay"):
        assert await three_steps(5) == 13
    assert CALLS["add"] == 3
    steps = await DBOS.list_workflow_steps_async("replay")
    assert [(s["function_id"], s["function_name"], s["output"]) for s in steps] == [
        (1, "mechanics.add", 6),
        (2, "mechanics.add", 7),
        (3, "mechanics.add", 13),
    ]


async def test_plain_coroutines_run_as_named_steps(sqlite_url: str) -> None:
    """`DBOS.run_step_async(options, fn, *args)` checkpoints an undecorated coroutine under the given step name."""
    CALLS.clear()
    for _ in range(2):
        with SetWorkflowID("ad-hoc"):
            assert await ad_hoc_steps() == ["answer to a", "answer to b"]
    assert CALLS["model_request"] == 2
    steps = await DBOS.list_workflow_steps_async("ad-hoc")
    assert [s["function_name"] for s in steps] == ["model_request", "tool:lookup"]


async def test_a_reused_workflow_id_returns_its_first_result_whatever_the_arguments(sqlite_url: str) -> None:
    """Starting a workflow id again with other arguments returns the first run's output: ids must be unique per run."""
    with SetWorkflowID("same-id"):
        assert await three_steps(1) == 5
    with SetWorkflowID("same-id"):
        assert await three_steps(100) == 5


async def test_a_child_workflow_under_a_derived_id_runs_once(sqlite_url: str) -> None:
    """The child started under `<parent>/<call id>` is recorded on the parent's step and not re-run with it."""
    CALLS.clear()
    with SetWorkflowID("parent-1"):
        assert await parent("call-7") == 11
    with SetWorkflowID("parent-1"):
        assert await parent("call-7") == 11
    assert CALLS["add"] == 1
    status = await DBOS.get_workflow_status_async("parent-1/call-7")
    assert status is not None and status.parent_workflow_id == "parent-1" and status.status == "SUCCESS"
    steps = await DBOS.list_workflow_steps_async("parent-1")
    assert [(s["function_name"], s["child_workflow_id"]) for s in steps] == [
        ("mechanics.child", "parent-1/call-7"),
        ("DBOS.getResult", "parent-1/call-7"),
    ]


async def test_concurrent_steps_take_step_ids_in_start_order(sqlite_url: str) -> None:
    """Steps started in order in a task group get step ids 1, 2, 3 in start order, whatever order they finish in."""
    with SetWorkflowID("concurrent"):
        finished = await concurrent()
    assert sorted(finished) == ["first", "second", "third"]
    steps = await DBOS.list_workflow_steps_async("concurrent")
    assert [(s["function_id"], s["output"]) for s in steps] == [(1, "first"), (2, "second"), (3, "third")]


async def test_step_outputs_are_pickled_by_default(sqlite_url: str) -> None:
    """With the default serializer even a plain int output is stored as base64 pickle ("py_pickle")."""
    with SetWorkflowID("pickled"):
        await three_steps(0)
    rows = _outputs(sqlite_url, "pickled")
    assert {serialization for *_, serialization in rows} == {"py_pickle"}
    assert rows[0][2] is not None and rows[0][2].startswith("gA")  # base64 of pickle protocol 4+


async def test_the_portable_serializer_stores_json_and_portable_errors(tmp_path: Path) -> None:
    """With DBOSPortableJSONSerializer outputs are JSON text and a step exception is stored as PortableWorkflowError."""
    with launched(f"sqlite:///{tmp_path / 'dbos.sqlite'}", serializer=DBOSPortableJSONSerializer()) as url:
        with SetWorkflowID("json"):
            await three_steps(0)
        with SetWorkflowID("caught"):
            assert await catching() == "ValueError: the tool broke"  # the live call sees the real exception
        steps = await DBOS.list_workflow_steps_async("caught")
    assert [(output, serialization) for _, _, output, serialization in _outputs(url, "json")] == [
        ("1", "portable_json"),
        ("2", "portable_json"),
        ("3", "portable_json"),
    ]
    error = steps[0]["error"]
    assert isinstance(error, PortableWorkflowError)
    assert (error.name, error.message) == ("ValueError", "the tool broke")


async def test_a_step_output_with_no_json_form_is_recorded_as_the_steps_error(tmp_path: Path) -> None:
    """Under the JSON serializer a non-JSON output raises TypeError after the body ran; that error is recorded."""
    CALLS.clear()
    with launched(f"sqlite:///{tmp_path / 'dbos.sqlite'}", serializer=DBOSPortableJSONSerializer()):
        with pytest.raises(TypeError, match="not portable JSON serializable"), SetWorkflowID("opaque"):
            await opaque_flow()
        assert CALLS["opaque"] == 1
        [step] = await DBOS.list_workflow_steps_async("opaque")
    assert step["output"] is None and isinstance(step["error"], PortableWorkflowError)
    assert step["error"].name == "TypeError"


async def test_a_workflow_registered_after_launch_can_be_started_here(sqlite_url: str) -> None:
    """Decorating after launch registers the workflow for this process (launch-time recovery could not have used it)."""

    @DBOS.workflow(name="mechanics.late")
    async def late(x: int) -> int:
        return await add(x, 100)

    with SetWorkflowID("late"):
        assert await late(1) == 101
    status = await DBOS.get_workflow_status_async("late")
    assert status is not None and status.name == "mechanics.late"


async def test_sync_dbos_calls_are_refused_on_a_running_event_loop(sqlite_url: str) -> None:
    """Blocking DBOS calls raise RuntimeError inside an event loop and name their `_async` variant."""
    with pytest.raises(RuntimeError, match="list_workflow_steps_async"):
        DBOS.list_workflow_steps("anything")


def test_async_workflows_are_refused_under_trio(sqlite_url: str) -> None:
    """An async workflow awaited under trio fails with RuntimeError: DBOS's async API needs asyncio."""

    async def main() -> int:
        with SetWorkflowID("on-trio"):
            return await three_steps(1)

    with pytest.raises(RuntimeError, match="event loop"):
        trio.run(main)


def test_dbos_can_be_destroyed_and_launched_again_in_one_process(tmp_path: Path) -> None:
    """After `DBOS.destroy()` a new `DBOS(config)` launches on another database; import-time registrations remain."""
    for name in ("first", "second"):
        with launched(f"sqlite:///{tmp_path / name}.sqlite"), SetWorkflowID(f"run-{name}"):
            assert asyncio.run(three_steps(2)) == 7
    with pytest.raises(dbos_errors.DBOSException, match=r"DBOS\(config=...\) first"):
        DBOS.launch()


async def test_a_postgres_system_database_holds_the_checkpoints(postgres_database: str) -> None:
    """On PostgreSQL, DBOS creates its `dbos` schema on launch and records the workflow and its steps there."""
    with launched(postgres_database), SetWorkflowID("on-postgres"):
        assert await three_steps(3) == 9
    with psycopg.connect(postgres_database) as connection:
        status = connection.execute(
            "SELECT status, name FROM dbos.workflow_status WHERE workflow_uuid = 'on-postgres'"
        ).fetchone()
        steps = connection.execute(
            "SELECT count(*) FROM dbos.operation_outputs WHERE workflow_uuid = 'on-postgres'"
        ).fetchone()
    assert status == ("SUCCESS", "mechanics.three_steps")
    assert steps == (3,)
