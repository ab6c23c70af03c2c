"""`DurableAgent`: an agent whose runs are DBOS workflows."""

from __future__ import annotations

import dataclasses
import inspect
import math
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final, Generic

from dbos import DBOS, DBOSClient, PortableWorkflowError, SetWorkflowID, WorkflowSerializationFormat
from pydantic_core import from_json
from typing_extensions import TypeVar

from .._context_state import (
    ResourceFactory,
    context_layout,
    dump_state,
    export_decisions,
    import_decisions,
    restore,
)
from .._run import coerce_context
from .._run.history import check_history
from .._run.spec import spec_of
from .._run.tree import DEFAULT_MAX_REQUESTS, RunOptions
from .._signature import InjectedCall
from ..context import RunContext, ToolApprovalItem
from ..exceptions import UserError
from ..interceptors import Interceptor
from ..messages import Message, messages_from_json, messages_to_json
from ..result import RunResult
from ..tools import AgentTool
from ..usage import Usage, UsageLimits
from ._codec import RunReply, RunRequest, describe, rebuild, trace_from_data
from ._steps import APPROVAL_TOPIC, PENDING_EVENT, class_path
from ._workflow import (
    WORKFLOW_NAME,
    give_resources,
    register,
    resolve_class,
    run_workflow,
    take_back_resources,
    wait_for_result,
)

if TYPE_CHECKING:
    from dbos import WorkflowHandleAsync

    from ..agent import Agent

__all__ = ["DEFAULT_APPROVAL_TIMEOUT", "DEFAULT_QUEUE", "DurableAgent"]

ContextT = TypeVar("ContextT", bound=RunContext, default=RunContext)
OutputT = TypeVar("OutputT", default=str)

DEFAULT_QUEUE: Final = "cogent-runs"
"""The DBOS queue `DurableAgent.enqueue()` and `Worker` use unless told otherwise."""
DEFAULT_APPROVAL_TIMEOUT: Final = 30 * 24 * 3600.0
"""How long (seconds) a durable run waits for an approval before the call counts as rejected: 30 days."""


class DurableAgent(Generic[ContextT, OutputT]):
    """Runs an agent as DBOS workflows: every model request and tool call is a checkpoint.

    A durable run survives its process: after a crash, any process of the application
    that constructed the same `DurableAgent` resumes it from its last completed step.
    Model requests and tool calls are DBOS steps, each delegation to a subagent is a child
    workflow (`<run id>/<turn>/<call id>`), a call that needs approval waits durably
    (`approve()` / `reject()` from any process resume it), and the result is a normal
    `RunResult`. Interceptors, usage limits, `max_turns` and the context's deadline apply
    as in `Agent.run()`.

    Construct durable agents at import time (or at least before `DBOS.launch()`): a run
    recovered in a process finds its agent by `name` there. Durable runs execute on
    asyncio only (DBOS's async workflows use asyncio directly), do not stream, and run a
    response's tool calls one after another (their checkpoints must come in a
    deterministic order).

    Args:
        agent: The agent to run.
        name: The agent's key in this process's registry (default: `agent.name`); it is
            written into every run's checkpoint.
        resources: Makes the context's resource fields (`Annotated[T, Resource]`) for a run
            executing from checkpointed state: called with the restored state (field name to
            value, read-only), returns a mapping of resource field names to values. A run
            started with `run()` uses the caller's own resources in this process.
        release: Called with what `resources` returned when that execution ends (close
            connections there).
        interceptors: Interceptors for every agent of each run (as `run(interceptors=...)`).
            They run again when a run is recovered: keep them deterministic.
        approval_handler: Decides calls that need approval (as `run(approval_handler=...)`);
            its answer is checkpointed. Without it, a call that needs approval waits until
            `approve()` or `reject()` (or `approval_timeout`).
        approval_timeout: Seconds a call waits for a decision before it counts as rejected.

    Raises:
        UserError: If an argument cannot work, the agent's `context_type` has a field that
            cannot be checkpointed (the error names it and the fix: mark it a `Resource`) or
            a resource field without a default and there is no `resources` factory, two
            different subagents share a name, or another durable agent has this name.
    """

    def __init__(
        self,
        agent: Agent[ContextT, OutputT],
        *,
        name: str | None = None,
        resources: ResourceFactory | None = None,
        release: Callable[[Mapping[str, Any]], Any] | None = None,
        interceptors: Sequence[Interceptor] = (),
        approval_handler: Callable[..., Any] | None = None,
        approval_timeout: float = DEFAULT_APPROVAL_TIMEOUT,
    ) -> None:
        from ..agent import Agent

        caller = inspect.currentframe()
        caller = caller.f_back if caller is not None else None
        self._origin = (caller.f_code.co_filename, caller.f_lineno) if caller is not None else ("", 0)
        if not isinstance(agent, Agent):
            raise UserError(f"DurableAgent() needs an Agent, got {type(agent).__qualname__}.")
        where = f"DurableAgent({agent.name!r})"
        self._name = agent.name if name is None else name
        if not isinstance(self._name, str) or not self._name:
            raise UserError(f"{where} got name={name!r}; pass a non-empty str.")
        for label, value in (("resources", resources), ("release", release)):
            if value is not None and not callable(value):
                raise UserError(f"{where} got {label}={value!r}; pass a function or None.")
        if (
            isinstance(approval_timeout, bool)
            or not isinstance(approval_timeout, int | float)
            or not (approval_timeout > 0 and math.isfinite(approval_timeout))
        ):
            raise UserError(f"{where} got approval_timeout={approval_timeout!r}; pass a positive number of seconds.")
        RunOptions(interceptors=interceptors, approval_handler=approval_handler).check(agent.name)
        _check_resources(agent.context_type, resources, where)  # also: a field that cannot be checkpointed
        self._agent = agent
        self._resources = resources
        self._release = release
        self._interceptors = tuple(interceptors)
        self._handler = (
            InjectedCall(approval_handler, owner="The approval_handler", arity=1)
            if approval_handler is not None
            else None
        )
        self._approval_timeout = float(approval_timeout)
        self._agents: dict[str, Agent[Any, Any]] = {}
        self._collect()
        register(self)

    def __repr__(self) -> str:
        return f"DurableAgent(name={self._name!r}, agent={self._agent!r})"

    # --- what the workflow reads (`_workflow.Registered`) ---------------------------------

    @property
    def name(self) -> str:
        """The agent's key in this process's registry of durable agents."""
        return self._name

    @property
    def origin(self) -> tuple[str, int]:
        """Where this durable agent was constructed (file, line): constructing it again there replaces it."""
        return self._origin

    @property
    def agent(self) -> Agent[ContextT, OutputT]:
        """The agent."""
        return self._agent

    @property
    def resources(self) -> ResourceFactory | None:
        """The resource factory, or `None`."""
        return self._resources

    @property
    def release(self) -> Callable[[Mapping[str, Any]], Any] | None:
        """Releases what the resource factory made, or `None`."""
        return self._release

    @property
    def interceptors(self) -> tuple[Interceptor, ...]:
        """The interceptors for every agent of each run."""
        return self._interceptors

    @property
    def handler(self) -> InjectedCall | None:
        """The approval handler, ready to call."""
        return self._handler

    @property
    def approval_timeout(self) -> float:
        """Seconds a call waits for a decision."""
        return self._approval_timeout

    def agent_named(self, name: str) -> Agent[Any, Any]:
        """Return the agent, or the subagent (at any depth) named `name`.

        Raises:
            UserError: If it has none of that name.
        """
        found = self._agents.get(name)
        if found is None:
            self._collect()  # subagents added after construction
            found = self._agents.get(name)
        if found is None:
            raise UserError(
                f"DurableAgent {self._name!r} has no agent named {name!r}; the run was started by a version of the "
                "application with other subagents. Run it with the same agents."
            )
        return found

    def _collect(self) -> None:
        agents: dict[str, Agent[Any, Any]] = {}
        pending = [self._agent]
        while pending:
            agent = pending.pop()
            held = agents.get(agent.name)
            if held is agent:
                continue
            if held is not None:
                raise UserError(
                    f"DurableAgent {self._name!r} reaches two different agents named {agent.name!r}; a recovered "
                    "delegation finds its subagent by name, so give each agent its own name."
                )
            agents[agent.name] = agent
            pending.extend(t.agent for t in agent.tools if isinstance(t, AgentTool))
        self._agents = agents

    # --- starting runs ---------------------------------------------------------------------

    async def run(
        self,
        task: str,
        *,
        context: ContextT | dict[str, Any] | None = None,
        run_id: str | None = None,
        message_history: Sequence[Message] | None = None,
        usage_limits: UsageLimits | None = None,
        max_depth: int = 16,
        max_requests: int = DEFAULT_MAX_REQUESTS,
    ) -> RunResult[ContextT, OutputT]:
        """Run the agent as a durable workflow in this process and return its result.

        DBOS must be launched in this process (e.g. with `Worker`). The run executes on
        this process's event loop with the context's own resources; if the process dies,
        the run resumes elsewhere (see the module docs). Calling `run()` again with the
        `run_id` of an earlier run returns that run's result (waiting for it if needed)
        without running anything, whatever the other arguments.

        Args:
            task: The user's message.
            context: The run context (an instance of the agent's `context_type`); a dict
                becomes `RunContext(metadata=dict)`. Its state is checkpointed (secrets
                included: mark a field a `Resource` to keep it out); your object is never
                modified.
            run_id: The run's workflow id (default: a new UUID). Approvals are bound to it.
            message_history: Earlier messages.
            usage_limits: Caps checked before each model request and tool call.
            max_depth: The hard delegation limit.
            max_requests: The hard bound on the tree's model requests.

        Returns:
            The run's `RunResult`: `result.context` carries the final state with the
            context's resources.

        Raises:
            UserError: For misuse (bad arguments, a context field that cannot be
                checkpointed, a context class not defined at module level, a required
                resource field without a `resources` factory).
            AgentRunError: And its subclasses, as `Agent.run()` raises them.
            dbos.DBOSException: If DBOS is not launched in this process.
        """
        request, ctx = self._request(task, context, run_id, message_history, usage_limits, max_depth, max_requests)
        resources = {name: getattr(ctx, name) for name in context_layout(type(ctx)).resource_fields}
        give_resources(request.run_id, resources)
        try:
            with SetWorkflowID(request.run_id):
                handle = await DBOS.start_workflow_async(run_workflow, request.model_dump_json())
            text = await _reply_text(handle)
        finally:
            take_back_resources(request.run_id)
        return self._result(text, lambda state: resources)

    async def start(
        self,
        task: str,
        *,
        context: ContextT | dict[str, Any] | None = None,
        run_id: str | None = None,
        message_history: Sequence[Message] | None = None,
        usage_limits: UsageLimits | None = None,
        max_depth: int = 16,
        max_requests: int = DEFAULT_MAX_REQUESTS,
    ) -> str:
        """Start a durable run in this process without waiting for it; return its run id.

        The run's resources come from the `resources` factory (the caller's context may
        be gone when it runs). Get the result with `result(run_id)`. The arguments are
        those of `run()`.

        Raises:
            UserError: As `run()`.
        """
        request, _ = self._request(task, context, run_id, message_history, usage_limits, max_depth, max_requests)
        with SetWorkflowID(request.run_id):
            await DBOS.start_workflow_async(run_workflow, request.model_dump_json())
        return request.run_id

    async def enqueue(
        self,
        task: str,
        *,
        queue: str = DEFAULT_QUEUE,
        client: DBOSClient | None = None,
        app_version: str | None = None,
        context: ContextT | dict[str, Any] | None = None,
        run_id: str | None = None,
        message_history: Sequence[Message] | None = None,
        usage_limits: UsageLimits | None = None,
        max_depth: int = 16,
        max_requests: int = DEFAULT_MAX_REQUESTS,
    ) -> str:
        """Put a durable run on a DBOS queue, for whichever `Worker` has room; return its run id.

        Args:
            task: The user's message.
            queue: The queue's name (the workers' `Worker(queue=...)`).
            client: A `DBOSClient` to enqueue with from a process that does not run DBOS
                (e.g. a web server); `None` uses this process's launched DBOS.
            app_version: With a client, the workers' `application_version` (without it, only
                workers running the latest version dequeue the run).
            context: As `run()`; its resources come from the workers' `resources` factory.
            run_id: As `run()`.
            message_history: As `run()`.
            usage_limits: As `run()`.
            max_depth: As `run()`.
            max_requests: As `run()`.

        Returns:
            The run id.

        Raises:
            UserError: As `run()`.
        """
        request, _ = self._request(task, context, run_id, message_history, usage_limits, max_depth, max_requests)
        if client is None:
            with SetWorkflowID(request.run_id):
                await DBOS.enqueue_workflow_async(queue, run_workflow, request.model_dump_json())
        else:
            options: Any = {
                "workflow_name": WORKFLOW_NAME,
                "queue_name": queue,
                "workflow_id": request.run_id,
                "serialization_type": WorkflowSerializationFormat.PORTABLE,
            }
            if app_version is not None:
                options["app_version"] = app_version
            await client.enqueue_async(options, request.model_dump_json())
        return request.run_id

    def _request(
        self,
        task: str,
        context: Any,
        run_id: str | None,
        history: Sequence[Message] | None,
        limits: UsageLimits | None,
        max_depth: int,
        max_requests: int,
    ) -> tuple[RunRequest, RunContext]:
        where = f"DurableAgent {self._name!r}"
        RunOptions(usage_limits=limits, max_depth=max_depth, max_requests=max_requests).check(self._agent.name)
        if not isinstance(task, str):
            raise UserError(f"{where} needs a str task, got {type(task).__qualname__}.")
        if run_id is not None and (not isinstance(run_id, str) or not run_id):
            raise UserError(f"{where} got run_id={run_id!r}; pass a non-empty str or None.")
        ctx = coerce_context(context, where)
        cls = type(ctx)
        _check_resources(cls, self._resources, where)
        path = class_path(cls)
        if "<locals>" in path or resolve_class(path) is not cls:
            raise UserError(
                f"{where} got a {cls.__qualname__} context, a class that cannot be imported by name ({path}); a "
                "recovered run restores its context by class name, so define the class at module level."
            )
        messages = check_history(history, f"{where}.run()") if history is not None else None
        request = RunRequest(
            durable=self._name,
            agent=self._agent.name,
            task=task,
            context_class=path,
            state=dump_state(ctx),
            decisions=export_decisions(ctx),
            history=messages_to_json(messages) if messages is not None else None,
            run_id=run_id if run_id is not None else uuid.uuid4().hex,
            usage=Usage(),
            limits=limits,
            max_requests=max_requests,
            max_depth=max_depth,
        )
        return request, ctx

    # --- results and approvals ---------------------------------------------------------------

    async def result(self, run_id: str, *, client: DBOSClient | None = None) -> RunResult[ContextT, OutputT]:
        """Wait for a durable run (started anywhere) to finish and return its `RunResult`.

        `result.context` gets its resources from the `resources` factory (or the fields'
        defaults).

        Args:
            run_id: The run's id.
            client: A `DBOSClient`, from a process that does not run DBOS.

        Raises:
            UserError: If the context cannot be rebuilt (a resource without a default and no factory).
            AgentRunError: And its subclasses, if the run failed.
            Exception: DBOS's own, e.g. for an unknown run id.
        """
        handle: WorkflowHandleAsync[Any] = await (DBOS if client is None else client).retrieve_workflow_async(run_id)
        return self._result(await _reply_text(handle), self._resources)

    def _result(self, text: str, resources: ResourceFactory | None) -> RunResult[ContextT, OutputT]:
        reply = RunReply.model_validate_json(text)
        output: Any = from_json(reply.output)
        spec = spec_of(self._agent).output
        if reply.typed and spec is not None:
            output = spec.adapter.validate_json(reply.output)
        ctx = restore(resolve_class(reply.context_class), reply.state, resources=resources)
        import_decisions(ctx, reply.decisions)
        object.__setattr__(ctx, "agent", self._agent)
        return RunResult(
            output=output,
            messages=messages_from_json(reply.messages),
            usage=dataclasses.replace(reply.usage),
            context=ctx,  # type: ignore[arg-type]
            trace=trace_from_data(reply.trace),
            new_message_index=reply.new_message_index,
        )

    async def pending_approvals(self, run_id: str, *, client: DBOSClient | None = None) -> list[ToolApprovalItem]:
        """Return the calls of a durable run (its subagents included) that wait for a decision.

        Args:
            run_id: The run's id.
            client: A `DBOSClient`, from a process that does not run DBOS.
        """
        return [item for _, item in await _pending(run_id, client)]

    async def approve(
        self, run_id: str, item: ToolApprovalItem, *, always: bool = False, client: DBOSClient | None = None
    ) -> None:
        """Approve one pending call of a durable run, from any process; the run resumes.

        The decision is bound to `item` (its `approval_id`): it resumes only the call it was
        made for. The first decision sent for an item is the one that counts.

        Args:
            run_id: The run's id.
            item: The pending call, from `pending_approvals()`.
            always: Also approve every later call of the tool in this run (recorded on its context).
            client: A `DBOSClient`, from a process that does not run DBOS.

        Raises:
            UserError: If `item` is not a `ToolApprovalItem`, or no call of the run waits for it.
        """
        await _decide(run_id, item, approved=True, always=always, client=client)

    async def reject(
        self, run_id: str, item: ToolApprovalItem, *, always: bool = False, client: DBOSClient | None = None
    ) -> None:
        """Reject one pending call of a durable run (the model gets a rejection); the run resumes.

        Args:
            run_id: The run's id.
            item: The pending call, from `pending_approvals()`.
            always: Also reject every later call of the tool in this run.
            client: A `DBOSClient`, from a process that does not run DBOS.

        Raises:
            UserError: If `item` is not a `ToolApprovalItem`, or no call of the run waits for it.
        """
        await _decide(run_id, item, approved=False, always=always, client=client)


def _check_resources(cls: type[RunContext], resources: ResourceFactory | None, where: str) -> None:
    """Refuse a context class that cannot be checkpointed, or whose resources a recovered run could not make."""
    required = context_layout(cls).required_resources
    if required and resources is None:
        raise UserError(
            f"{where} has no resources= factory, but {cls.__qualname__}'s resource field(s) "
            f"{', '.join(sorted(required))} have no default; a run resumed in another process needs them made "
            "fresh: pass DurableAgent(resources=lambda state: {...})."
        )


async def _reply_text(handle: WorkflowHandleAsync[Any]) -> str:
    """Return a finished workflow's reply; a failure recorded by DBOS is rebuilt as its cogent class."""
    try:
        text = await wait_for_result(handle)
    except PortableWorkflowError as error:
        raise rebuild(describe(error)) from None
    assert isinstance(text, str)
    return text


async def _pending(run_id: str, client: DBOSClient | None) -> list[tuple[str, ToolApprovalItem]]:
    """Return `(workflow id, item)` for each call of the run (and its child workflows) that waits."""
    source: Any = DBOS if client is None else client
    found = [
        *await source.list_workflows_async(
            workflow_ids=[run_id], status="PENDING", load_input=False, load_output=False
        ),
        *await source.list_workflows_async(
            workflow_id_prefix=f"{run_id}/", status="PENDING", load_input=False, load_output=False
        ),
    ]
    pending = []
    for workflow_id in sorted(status.workflow_id for status in found):
        for data in await source.get_event_async(workflow_id, PENDING_EVENT, timeout_seconds=0) or ():
            pending.append((workflow_id, ToolApprovalItem(**data)))
    return pending


async def _decide(
    run_id: str, item: ToolApprovalItem, *, approved: bool, always: bool, client: DBOSClient | None
) -> None:
    verb = "approve" if approved else "reject"
    if not isinstance(item, ToolApprovalItem):
        raise UserError(
            f"DurableAgent.{verb}() needs a ToolApprovalItem (from pending_approvals()), got {type(item).__qualname__}."
        )
    target = next(
        (wid for wid, waiting in await _pending(run_id, client) if waiting.approval_id == item.approval_id), None
    )
    if target is None:
        raise UserError(
            f"No call of durable run {run_id!r} waits for approval of tool {item.tool_name!r} (approval id "
            f"{item.approval_id!r}); it was decided already, or the item is from another run. List the waiting "
            "calls with pending_approvals()."
        )
    message = {"approved": approved, "always": bool(always)}
    topic = APPROVAL_TOPIC + item.approval_id
    if client is None:
        await DBOS.send_async(target, message, topic, idempotency_key=item.approval_id)
    else:
        await client.send_async(
            target,
            message,
            topic,
            idempotency_key=item.approval_id,
            serialization_type=WorkflowSerializationFormat.PORTABLE,
        )
