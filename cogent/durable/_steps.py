"""`DurableSteps`: the run loop's steps as DBOS operations of the execution's workflow.

- a model request is a step `model_request` that records the response as JSON;
- a tool call is a step `tool:<name>` that records a tagged outcome (the result text, a
  `ModelRetry`, a `StopExecution`, or an error's type and message) with the context's
  state and approval decisions after the call; a replayed step loads them back, so the
  context catches up with what the call had changed;
- a delegation is a child workflow `<workflow id>/<turn>/<call id>` (the turn, because
  model call ids need not be unique across turns), whose context's `task_id` is that id;
- an approval is decided by the context's recorded decisions, else by the handler (a step
  `approval:<tool>`), else by a durable wait: the workflow publishes the pending item as
  its `cogent.pending_approvals` event and waits in `DBOS.recv_async` on the topic
  `cogent.approval:<approval id>`, so only a decision for exactly this item resumes it.

Every step returns JSON text built here: DBOS never pickles a user object. A step's
exception is recorded as its type and message and rebuilt (`_codec.rebuild`), in the live
run as after a replay, so the loop sees the same outcome either way.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from dbos import DBOS, StepOptions
from pydantic_core import to_jsonable_python

from .._context_state import context_layout, dump_state, export_decisions, import_decisions, load_state
from .._run import approvals, context_rules, history
from .._run.approvals import Decision
from .._run.hooks import Steps, call_with_timeout
from .._run.outcomes import ExecutionOutcome, Finished
from .._run.tool_calls import _value_text
from .._signature import InjectedCall
from ..context import RunContext, TaskContext, ToolApprovalItem, consume_decision
from ..exceptions import ModelRetry, UserError
from ..interceptors import StopExecution
from ..messages import Message, ModelResponse, messages_from_json, messages_to_json
from ..models import Model, ModelRequestParameters
from ..result import RunState
from ..tools import BaseTool
from ._codec import ErrorInfo, RunReply, RunRequest, describe, rebuild, trace_from_data, usage_delta

if TYPE_CHECKING:
    from .._run.execution import Execution
    from ..agent import Agent

__all__ = ["APPROVAL_TOPIC", "PENDING_EVENT", "DurableSteps", "class_path", "idempotency_key"]

PENDING_EVENT = "cogent.pending_approvals"
"""The DBOS event a waiting workflow publishes: the list of its pending `ToolApprovalItem`s (as dicts)."""
APPROVAL_TOPIC = "cogent.approval:"
"""The prefix of the `DBOS.recv` topic a decision is sent on (followed by the item's `approval_id`)."""

_MODEL_STEP: StepOptions = {"name": "model_request"}

ChildStarter = Callable[[str, RunRequest, dict[str, Any]], Coroutine[Any, Any, str]]
"""Starts (or rejoins) the child workflow with the given id and request, handing it the live
resources; returns the child's `RunReply` JSON."""


def class_path(cls: type[Any]) -> str:
    """Return `module:QualifiedName` of a class (how a run's input names its context class).

    A class of the `__main__` module of `python -m package.module` is named after
    `package.module`, so that a process that imports that module finds it.
    """
    module = cls.__module__
    if module == "__main__":
        spec = getattr(sys.modules.get("__main__"), "__spec__", None)
        if spec is not None:
            module = spec.name
    return f"{module}:{cls.__qualname__}"


def idempotency_key() -> str:
    """Return a key unique to the running durable tool call, the same when it runs again.

    A step killed before its checkpoint runs again after recovery (steps are at least
    once). A tool whose write must happen exactly once records this key in the same
    database transaction as its write (e.g. a table with the key as primary key) and
    skips the write when the key is already there.

    Returns:
        `<workflow id>:<step id>`.

    Raises:
        UserError: Outside a tool call of a durable run.
    """
    workflow_id, step_id = DBOS.workflow_id, DBOS.step_id
    if workflow_id is None or step_id is None:
        raise UserError(
            "idempotency_key() was called outside a durable tool call; call it from a tool of a DurableAgent's run."
        )
    return f"{workflow_id}:{step_id}"


class DurableSteps(Steps):
    """The steps of one durable agent execution (one workflow).

    Args:
        workflow_id: The execution's workflow id.
        request: The request the execution started from.
        start_child: Starts a delegation's child workflow.
        approval_timeout: Seconds a durable approval wait lasts before the call counts as rejected.
    """

    __slots__ = ("_approval_timeout", "_request", "_start_child", "_turn", "_workflow_id")

    def __init__(
        self, *, workflow_id: str, request: RunRequest, start_child: ChildStarter, approval_timeout: float
    ) -> None:
        self._workflow_id = workflow_id
        self._request = request
        self._start_child = start_child
        self._approval_timeout = approval_timeout
        self._turn = 0

    # --- model requests ------------------------------------------------------------------

    async def request(
        self, ex: Execution, model: Model, messages: list[Message], params: ModelRequestParameters
    ) -> ModelResponse:
        """Make the model request as a checkpointed step; replay its recorded response."""
        self._turn += 1
        live: list[ModelResponse] = []

        async def step() -> str:
            try:
                response = history.check_response(model, await model.request(messages, params))
            except Exception as exc:
                return describe(exc).model_dump_json()
            live.append(response)
            return messages_to_json([response])

        text = await DBOS.run_step_async(_MODEL_STEP, step)
        if live:
            return live[0]
        if text.startswith("["):
            response = messages_from_json(text)[0]
            assert isinstance(response, ModelResponse)
            return response
        raise rebuild(_error_info(text))

    # --- tool calls ----------------------------------------------------------------------

    async def call_tool(
        self, ex: Execution, tool: BaseTool, call_id: str, arguments: dict[str, Any], ctx: RunContext
    ) -> Any:
        """Execute the call as a checkpointed step; a replayed step restores the context it left."""
        ran = False

        async def step() -> str:
            nonlocal ran
            ran = True
            outcome = await _execute(tool, arguments, ctx)
            outcome["state"] = dump_state(ex.ctx)
            if ctx is not ex.ctx:  # a retry view: its own fields too
                outcome["view"] = dump_state(ctx)
            outcome["decisions"] = export_decisions(ex.ctx)
            return json.dumps(outcome)

        data = json.loads(await DBOS.run_step_async({"name": f"tool:{tool.name}"}, step))
        if not ran:
            load_state(ex.ctx, data["state"])
            if "view" in data:
                load_state(ctx, data["view"])
            import_decisions(ex.ctx, data["decisions"])
        kind = data["kind"]
        if kind == "value":
            return data["text"]
        if kind == "retry":
            raise ModelRetry(data["message"])
        if kind == "stop":
            raise StopExecution(data["response"])
        raise rebuild(_error_info(json.dumps(data["error"])))

    # --- delegation ----------------------------------------------------------------------

    def _child_id(self, call_id: str) -> str:
        return f"{self._workflow_id}/{self._turn}/{call_id}"

    def child_context(self, ex: Execution, call_id: str, sub: Agent[Any, Any]) -> RunContext:
        """The usual child context, whose `task_id` (for a `TaskContext`) is the child workflow's id."""
        child = context_rules.child_context(ex.ctx, sub)
        if isinstance(child, TaskContext):
            object.__setattr__(child, "task_id", self._child_id(call_id))
        return child

    async def delegate(
        self, ex: Execution, call_id: str, child: Execution, resume: RunState | None
    ) -> ExecutionOutcome:
        """Run the subagent as a child workflow; add its usage, trace and decisions to this execution's."""
        tree, ctx = ex.tree, child.ctx
        layout = context_layout(type(ctx))
        request = RunRequest(
            durable=self._request.durable,
            agent=child.agent.name,
            task=child.task,
            context_class=class_path(type(ctx)),
            state=dump_state(ctx),
            decisions=export_decisions(ctx),
            run_id=tree.run_id,
            call_path=child.path,
            depth=child.depth,
            usage=dataclasses.replace(tree.usage),
            spent=tree.budget.spent,
            limits=tree.limits,
            max_requests=tree.budget.limit,
            max_depth=tree.max_depth,
        )
        resources = {name: getattr(ctx, name) for name in layout.resource_fields}
        try:
            text = await self._start_child(self._child_id(call_id), request, resources)
        except Exception as exc:
            raise rebuild(describe(exc)) from exc
        reply = RunReply.model_validate_json(text)
        child.trace.extend(trace_from_data(reply.trace))
        tree.usage.incr(usage_delta(request.usage, reply.usage))
        tree.budget.spent += reply.spent - request.spent
        import_decisions(ex.ctx, reply.decisions)
        return Finished(reply.text)

    # --- approvals -----------------------------------------------------------------------

    async def approval(
        self, ex: Execution, item: ToolApprovalItem, ctx: RunContext, handler: InjectedCall | None
    ) -> Decision:
        """The recorded decision, else the handler's (a step), else a durable wait for one."""
        status = ctx.approval_status(item)
        if status != "undecided":
            consume_decision(ctx, item)  # a per-call decision covers this one call
            return status
        if handler is not None:
            return await self._ask_handler(item, ctx, handler)
        await DBOS.set_event_async(PENDING_EVENT, [dataclasses.asdict(item)])
        message = await DBOS.recv_async(APPROVAL_TOPIC + item.approval_id, timeout_seconds=self._approval_timeout)
        await DBOS.set_event_async(PENDING_EVENT, [])
        if not isinstance(message, dict) or message.get("approved") not in (True, False):
            return "rejected"  # no decision in time (or not one of ours): fail closed
        approved = message["approved"] is True
        if message.get("always") is True:
            (ctx.approve_tool if approved else ctx.reject_tool)(item, True)
        return "approved" if approved else "rejected"

    async def _ask_handler(self, item: ToolApprovalItem, ctx: RunContext, handler: InjectedCall) -> Decision:
        async def step() -> str:
            try:
                decision = await approvals.ask(item, ctx, handler)
            except Exception as exc:
                return describe(exc).model_dump_json()
            return json.dumps(decision)

        text = await DBOS.run_step_async({"name": f"approval:{item.tool_name}"}, step)
        if text in ('"approved"', '"rejected"'):
            return "approved" if text == '"approved"' else "rejected"
        raise rebuild(_error_info(text))


async def _execute(tool: BaseTool, arguments: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
    """Run one tool call under its timeout; return its tagged outcome (never raises an `Exception`)."""
    try:
        value = await call_with_timeout(tool, arguments, ctx)
        return {"kind": "value", "text": _text(value, tool.name)}
    except ModelRetry as retry:
        return {"kind": "retry", "message": retry.message}
    except StopExecution as stop:
        return {"kind": "stop", "response": to_jsonable_python(stop.response, fallback=str)}
    except Exception as exc:
        return {"kind": "error", "error": describe(exc).model_dump()}


def _error_info(text: str) -> ErrorInfo:
    return ErrorInfo.model_validate_json(text)


def _text(value: Any, tool_name: str) -> str:
    return value if type(value) is str and value.isascii() else _value_text(value, tool_name)
