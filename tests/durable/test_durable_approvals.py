"""Durable approvals across processes: a run waits for a decision durably; another process decides.

Process A runs the test application's case with no approval handler: at the refund, its
workflow publishes the pending `ToolApprovalItem` and waits in `DBOS.recv`. The test
process (a `DBOSClient`, no DBOS launched: what a web request handler would do) lists the
pending call, and A is killed while it waits. A decision for another item is refused, or,
sent raw on another item's topic, never resumes the run; process C recovers the run, waits
live, and is woken by `approve()`; a second, contrary decision for the same item (a double
click) is ignored. Pinned: the run ends as the run whose handler approved, the steps before
the wait never ran again, and the refund ran exactly once.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import anyio
import pytest
from dbos import DBOSClient, DBOSPortableJSONSerializer

from cogent.context import ToolApprovalItem
from cogent.exceptions import UserError

from ._support import CogentApp, Zygote, result_of

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    """Durable runs are asyncio-only (DBOS)."""
    return "asyncio"


async def _pending(app: CogentApp, durable: Any, client: DBOSClient, run_id: str) -> list[ToolApprovalItem]:
    deadline = time.monotonic() + 30
    while not app.executions():  # DBOS has created its tables once the run made a step
        assert time.monotonic() < deadline, "the run never started"
        await anyio.sleep(0.05)
    while not (items := await durable.pending_approvals(run_id, client=client)):
        assert time.monotonic() < deadline, "the run never waited for an approval"
        await anyio.sleep(0.05)
    return list(items)


async def test_a_waiting_run_is_resumed_by_a_decision_sent_from_another_process(
    zygote: Zygote, baseline: tuple[dict[str, Any], list[str]], fast_path: Path
) -> None:
    """Kill the waiting process, decide from a client, recover: the run ends approved, no step ran twice."""
    from ._cogent_app import APP_NAME, waiting

    app = CogentApp(fast_path)
    env = app.env(COGENT_APPROVAL="wait")
    client = DBOSClient(
        system_database_url=app.database_url, serializer=DBOSPortableJSONSerializer(), application_name=APP_NAME
    )
    try:
        zygote.start(app.argv("run"), env, fast_path / "a")
        [item] = await _pending(app, waiting, client, "case-1")
        assert (item.tool_name, item.agent_name, json.loads(item.arguments)) == ("refund", "desk", {"order_id": "o-1"})
        assert zygote.kill().returncode == -9  # the process dies while the run waits
        before = app.executions()

        forged = dataclasses.replace(item, approval_id="0" * 32)
        with pytest.raises(UserError, match="waits for approval"):
            await waiting.approve("case-1", forged, client=client)
        with pytest.raises(UserError, match="waits for approval"):
            await waiting.approve("another-case", item, client=client)

        zygote.start(app.argv("recover"), env, fast_path / "c")
        client.send("case-1", {"approved": True}, "cogent.approval:" + "0" * 32)  # another item's topic
        assert zygote.poll(1.5) is None  # still waiting
        assert await waiting.pending_approvals("case-1", client=client) == [item]
        await waiting.approve("case-1", item, client=client)
        client.send("case-1", {"approved": False}, "cogent.approval:" + item.approval_id, item.approval_id)
        final = result_of(zygote.wait())
    finally:
        client.destroy()

    expected = baseline[0]
    # As when the handler approved; the step ids (in the writes' idempotency keys) differ: waiting takes more.
    assert {**final, "writes": None} == {**expected, "writes": None}
    assert sorted(w[1:] for w in final["writes"]) == sorted(w[1:] for w in expected["writes"])
    executions = app.executions()
    assert executions[: len(before)] == before  # the steps before the wait did not run again
    assert len(executions) == len(set(executions)) == len(baseline[1])  # each step ran once, the refund too
