"""The one DBOS workflow every durable agent execution runs as, and the registry it finds agents in.

`cogent.run` is registered when `cogent.durable` is imported, before any `DBOS.launch()`.
Its input is a `RunRequest` as JSON text; it finds the `DurableAgent` by name in this
process's registry (so a process that may recover runs constructs the same durable agents
before it launches DBOS), restores the context from the checkpointed state with fresh
resources, runs the agent's turn loop with `DurableSteps`, and returns a `RunReply` as
JSON text. The top-level run and each delegation's child workflow are the same workflow.
"""

from __future__ import annotations

import dataclasses
import importlib
import sys
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

import anyio
from dbos import DBOS, SetWorkflowID, WorkflowSerializationFormat
from pydantic_core import to_json

from .._context_state import ResourceFactory, dump_state, export_decisions, import_decisions, restore
from .._run import context_rules
from .._run.execution import Execution
from .._run.hooks import observer_for
from .._run.outcomes import Finished
from .._run.results import to_text
from .._run.spec import spec_of
from .._run.tree import RunTree, WorkBudget
from .._signature import InjectedCall
from ..context import RunContext
from ..events import TraceEvent
from ..exceptions import UserError
from ..interceptors import Interceptor
from ..messages import messages_from_json, messages_to_json
from ._codec import RunReply, RunRequest, trace_to_data
from ._steps import DurableSteps

if TYPE_CHECKING:
    from dbos import WorkflowHandleAsync

    from ..agent import Agent

__all__ = [
    "WORKFLOW_NAME",
    "Registered",
    "give_resources",
    "lookup",
    "register",
    "resolve_class",
    "run_workflow",
    "start_child",
    "take_back_resources",
    "wait_for_result",
]

WORKFLOW_NAME = "cogent.run"
"""The DBOS name of the workflow (what an enqueue names)."""
_FIRST_POLL, _LAST_POLL = 0.05, 1.0
_CHILD_POLL = 0.2
"""Seconds between two looks at a child workflow that runs elsewhere (after a recovery)."""


class Registered(Protocol):
    """What the workflow needs from a `DurableAgent`."""

    @property
    def name(self) -> str:
        """The registry key."""

    @property
    def origin(self) -> tuple[str, int]:
        """Where it was constructed (file, line)."""

    @property
    def agent(self) -> Agent[Any, Any]:
        """The top-level agent (its `instrument` setting applies to every execution of a run)."""

    @property
    def resources(self) -> ResourceFactory | None:
        """Makes a restored context's resources."""

    @property
    def release(self) -> Callable[[Mapping[str, Any]], Any] | None:
        """Releases the resources the factory made."""

    @property
    def interceptors(self) -> tuple[Interceptor, ...]:
        """Run-level interceptors."""

    @property
    def handler(self) -> InjectedCall | None:
        """The approval handler."""

    @property
    def approval_timeout(self) -> float:
        """Seconds a durable approval wait lasts."""

    def agent_named(self, name: str) -> Agent[Any, Any]:
        """The agent or subagent called `name`."""


_registry: dict[str, Registered] = {}
_live_resources: dict[str, dict[str, Any]] = {}
"""Resources handed to a workflow started by this process (by workflow id): the caller's live
handles, used instead of the factory when the workflow runs here."""


def register(durable: Registered) -> None:
    """Make `durable` findable by the workflow under its name.

    A durable agent constructed again at the same place (a module or notebook cell run
    again) replaces the earlier one.

    Raises:
        UserError: If a durable agent constructed elsewhere has that name in this process.
    """
    held = _registry.get(durable.name)
    if held is not None and held is not durable and held.origin != durable.origin:
        raise UserError(
            f"A DurableAgent named {durable.name!r} already exists in this process; recovered runs find their "
            "agent by name, so give each durable agent its own name (DurableAgent(agent, name=...))."
        )
    _registry[durable.name] = durable


def lookup(name: str) -> Registered:
    """Return the durable agent registered as `name`.

    Raises:
        UserError: If none is (the process did not construct it before DBOS started the run).
    """
    durable = _registry.get(name)
    if durable is None:
        raise UserError(
            f"No DurableAgent named {name!r} exists in this process, so its run cannot execute here; construct "
            "the same durable agents in every process that runs or recovers runs, before DBOS.launch()."
        )
    return durable


@DBOS.workflow(name=WORKFLOW_NAME, serialization_type=WorkflowSerializationFormat.PORTABLE)
async def run_workflow(request: str) -> str:
    """Execute one durable agent execution; return its `RunReply` as JSON text."""
    req = RunRequest.model_validate_json(request)
    workflow_id = DBOS.workflow_id
    assert workflow_id is not None  # inside a workflow
    return await _execute(lookup(req.durable), req, workflow_id)


async def start_child(child_id: str, request: RunRequest, resources: dict[str, Any]) -> str:
    """Start (or, on replay, rejoin) a delegation's child workflow and return its reply text."""
    _live_resources[child_id] = resources
    try:
        with SetWorkflowID(child_id):
            handle = await DBOS.start_workflow_async(run_workflow, request.model_dump_json())
        # Never cancelled: DBOS records `getResult` as an operation of this workflow once the
        # result is in, and a wait cancelled while it records would record it twice.
        text = await handle.get_result(polling_interval_sec=_CHILD_POLL)
        assert isinstance(text, str)
        return text
    finally:
        _live_resources.pop(child_id, None)


async def wait_for_result(handle: WorkflowHandleAsync[Any]) -> Any:
    """Return a workflow's result, polling the database with a growing interval (0.05 s to 1 s).

    Outside workflows only (a round cut short inside a workflow could record `getResult`
    twice). A handle of a workflow that runs elsewhere polls the database at a fixed
    interval (DBOS's default: 1 s); rounds that double return a quick run's result
    quickly and poll a long one rarely.
    """
    interval = _FIRST_POLL
    while True:
        with anyio.move_on_after(interval):
            return await handle.get_result(polling_interval_sec=interval)
        interval = min(interval * 2, _LAST_POLL)


def give_resources(workflow_id: str, resources: dict[str, Any]) -> None:
    """Hand the live resources of a caller's context to the workflow it starts in this process."""
    _live_resources[workflow_id] = resources


def take_back_resources(workflow_id: str) -> None:
    """Forget the resources handed to `workflow_id` (it ran, or it existed already)."""
    _live_resources.pop(workflow_id, None)


def resolve_class(path: str) -> type[RunContext]:
    """Return the context class `module:QualifiedName` names.

    Raises:
        UserError: If it cannot be imported or is not a `RunContext` subclass.
    """
    module_name, _, qualname = path.partition(":")
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    try:
        # The class of a `python -m module` process lives in __main__: never import that module twice.
        obj: Any = main if spec is not None and spec.name == module_name else importlib.import_module(module_name)
        for part in qualname.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError):
        obj = None
    if not (isinstance(obj, type) and issubclass(obj, RunContext)):
        raise UserError(
            f"The durable run's context class {path!r} cannot be imported here; define context classes at module "
            "level in a module every process of the application imports."
        )
    return obj


async def _execute(durable: Registered, req: RunRequest, workflow_id: str) -> str:
    agent = durable.agent_named(req.agent)
    live = _live_resources.pop(workflow_id, None)
    made: list[Mapping[str, Any]] = []

    def resources(state: Mapping[str, Any]) -> Mapping[str, Any]:
        if live is not None:
            return live
        if durable.resources is None:
            return {}
        fresh = durable.resources(state)
        made.append(fresh)
        return fresh

    ctx = restore(resolve_class(req.context_class), req.state, resources=resources)
    try:
        import_decisions(ctx, req.decisions)
        if req.depth == 0:
            ctx = context_rules.execution_copy(ctx, agent, req.task)
        else:
            object.__setattr__(ctx, "agent", agent)
        tree = RunTree(
            usage=dataclasses.replace(req.usage),
            limits=req.limits,
            budget=WorkBudget(limit=req.max_requests, spent=req.spent),
            interceptors=durable.interceptors,
            approval_handler=durable.handler,
            max_depth=req.max_depth,
            emit=None,
            run_id=req.run_id,
            observer=observer_for(durable.agent.instrument, None),
            steps=DurableSteps(
                workflow_id=workflow_id,
                request=req,
                start_child=start_child,
                approval_timeout=durable.approval_timeout,
            ),
        )
        trace: list[TraceEvent] = []
        messages = messages_from_json(req.history) if req.history is not None else []
        execution = Execution(agent, ctx, tree, req.task, messages, depth=req.depth, path=req.call_path, trace=trace)
        outcome = await execution.run(None)
        assert isinstance(outcome, Finished)  # durable approvals wait; they never interrupt
        output, typed = _output_json(agent, outcome.output)
        reply = RunReply(
            output=output,
            typed=typed,
            text=to_text(outcome.output),
            messages=messages_to_json(execution.messages),
            new_message_index=execution.start,
            usage=tree.usage,
            spent=tree.budget.spent,
            trace=trace_to_data(trace),
            context_class=req.context_class,
            state=dump_state(ctx),
            decisions=export_decisions(ctx),
        )
        return reply.model_dump_json()
    finally:
        if made and durable.release is not None:
            durable.release(made[0])


def _output_json(agent: Agent[Any, Any], output: Any) -> tuple[str, bool]:
    """Return the output as JSON text, and whether it is the agent's `output_type`."""
    spec = spec_of(agent).output
    if spec is None:
        return to_json(output, fallback=str).decode(), isinstance(output, str)
    try:
        return spec.adapter.dump_json(output, warnings="error").decode(), True
    except Exception:  # an interceptor or StopExecution ended the run with another value
        return to_json(output, fallback=str).decode(), False
