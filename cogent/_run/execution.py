"""The turn loop: one agent executing one task with one context.

An `Execution` runs the agent's turns (a model request, then its tool calls) until the
agent has an output, its calls wait for approval, or an interceptor ends it. It returns a
typed outcome (`Finished` or `Interrupted`); the steps of a turn live in their own modules:
`tool_calls` (one call, start to end), `delegation` (a call to a subagent), `output` (the
final answer), `history` (ids and pairs) and `context_rules` (helper fields). Integrations
plug in through `hooks` (`RunTree.steps`, `RunTree.observer`).
"""

from __future__ import annotations

import time
from collections.abc import Coroutine
from contextlib import AsyncExitStack, nullcontext
from typing import TYPE_CHECKING, Any

import anyio
import anyio.lowlevel

from .._signature import InjectedCall
from ..context import RunContext, Running, running
from ..events import ReasoningDeltaEvent, StreamEvent, TextDeltaEvent, TraceEvent, TraceKind
from ..exceptions import DeadlineExceeded, MaxTurnsExceeded, UnexpectedModelBehavior
from ..interceptors import InterceptContext, Phase
from ..messages import Message, ModelResponse, UserPrompt
from ..models import Model, ModelRequestParameters, ReasoningDelta, TextDelta
from ..result import RunState
from ..tools import AnyTool, ToolDefinition
from . import context_rules, history, output, tool_calls
from .outcomes import NEXT_TURN, ExecutionOutcome, Finished, Interrupted, NextTurn, TurnOutcome
from .phases import End, Plan, UseValue, run_phase
from .spec import AgentSpec, instructions_for, spec_of
from .tree import RunTree

if TYPE_CHECKING:
    from ..agent import Agent
    from .hooks import Observer

__all__ = ["Execution"]

# `isinstance` tuples and enum members as module constants: `A | B` builds a union object and
# `Phase.X` is a class attribute lookup (~65 ns) on every step.
_NO_SCOPE = nullcontext()  # reusable: it holds no state
_DECIDED = (End, UseValue)
_TURN_OUTCOMES = (Finished, Interrupted, NextTurn)
_PRE_RUN = Phase.PRE_RUN
_PRE_THINK = Phase.PRE_THINK
_POST_THINK = Phase.POST_THINK
_POST_RUN = Phase.POST_RUN
_ON_ERROR = Phase.ON_ERROR


class Execution:
    """One agent executing one task with one context (the top-level run or a delegation).

    It is also what a run started inside one of its tools finds in `enclosing_run`: its
    `tree` (for the shared request budget and depth limit) and its `depth`.
    """

    __slots__ = (
        "agent",
        "all_definitions",
        "ctx",
        "definitions",
        "depth",
        "instructions",
        "messages",
        "model",
        "params",
        "parent_task_id",
        "path",
        "plan",
        "retries",
        "spec",
        "start",
        "task",
        "task_id",
        "tools",
        "trace",
        "tree",
    )

    def __init__(
        self,
        agent: Agent[Any, Any],
        ctx: RunContext,
        tree: RunTree,
        task: str,
        messages: list[Message],
        *,
        depth: int,
        path: tuple[str, ...],
        trace: list[TraceEvent],
    ) -> None:
        self.agent = agent
        self.spec: AgentSpec = spec_of(agent)
        self.ctx = ctx
        self.tree = tree
        self.task = task
        self.messages = messages
        self.start = len(messages)
        self.depth = depth
        self.path = path
        self.trace = trace
        self.plan: Plan = tree.plan_for(agent, self.spec.plan)
        self.model: Model = agent.model
        self.tools: dict[str, AnyTool] = self.spec.tools
        self.all_definitions: list[ToolDefinition] = self.spec.definitions
        """Every tool of the execution (its own, its subagents', its toolsets')."""
        self.definitions = self.all_definitions
        """What the model is offered (narrowed by a PRE_RUN `modify_tools`)."""
        self.retries: dict[str, int] = {}
        self.instructions: str | None = None
        self.params: ModelRequestParameters | None = None
        """The last request's parameters, reused while nothing they hold changes."""
        self.task_id, self.parent_task_id = context_rules.lineage(ctx)

    # --- shared by the step modules --------------------------------------------------

    def record(
        self,
        kind: TraceKind,
        started: float,
        *,
        tool_name: str | None = None,
        call_id: str | None = None,
        detail: str | None = None,
        error: BaseException | None = None,
        decision: Any = None,
        finish_reason: Any = None,
        usage: Any = None,
    ) -> TraceEvent:
        """Append a trace event for a step that started at `started` (perf_counter seconds)."""
        # Slots set one by one on `object.__new__`: cheaper than the dataclass `__init__` with
        # keywords (one event per step). Every field is set here.
        event = object.__new__(TraceEvent)
        event.kind = kind
        event.agent = self.agent.name
        event.depth = self.depth
        event.tool_name = tool_name
        event.call_id = call_id
        event.task_id = self.task_id
        event.parent_task_id = self.parent_task_id
        event.started = started
        event.duration = time.perf_counter() - started
        event.detail = detail
        event.decision = decision
        event.finish_reason = finish_reason
        event.usage = usage
        event.error = error
        event.children = []
        self.trace.append(event)
        if self.tree.observer is not None:
            self.tree.observer.event(self, event)
        return event

    def intercept_context(
        self,
        phase: Phase,
        ctx: RunContext,
        *,
        tools: list[ToolDefinition] | None = None,
        model: Model | None = None,
        tool_name: str | None = None,
        tool_call_id: str | None = None,
        tool_args: dict[str, Any] | None = None,
        tool_result: str | None = None,
        error: BaseException | None = None,
        model_response: ModelResponse | None = None,
        output: Any = None,
    ) -> InterceptContext:
        """Return what an interceptor sees in `phase` (built only when a handler exists for it)."""
        # Slots set one by one on `object.__new__`: the dataclass `__init__` with 17 keywords
        # takes CPython's keyword-dict call path, twice the cost (the first interceptor's
        # cost per tool call is mostly this object). Every field is set here.
        ic = object.__new__(InterceptContext)
        ic.phase = phase
        ic.agent = self.agent
        ic.run_context = ctx
        ic.task = self.task
        ic.messages = self.messages
        ic.usage = self.tree.usage
        ic.state = self.tree.state
        ic.depth = self.depth
        ic.tools = tools
        ic.model = model
        ic.tool_name = tool_name
        ic.tool_call_id = tool_call_id
        ic.tool_args = tool_args
        ic.tool_result = tool_result
        ic.error = error
        ic.model_response = model_response
        ic.output = output
        return ic

    async def interceptor_failed(self, exc: Exception, ic: InterceptContext) -> End | UseValue | None:
        """ON_ERROR for an interceptor's exception in the phase of `ic` (see `phases.dispatch`)."""
        return await self.on_error(exc, ic.run_context, ic.tool_name, ic.tool_call_id, ic.tool_args)

    async def on_error(
        self,
        exc: BaseException,
        ctx: RunContext | None = None,
        tool_name: str | None = None,
        tool_call_id: str | None = None,
        tool_args: dict[str, Any] | None = None,
    ) -> End | UseValue | None:
        """Fire ON_ERROR once for `exc` (with the tool's fields for a tool's error); return the
        recovery it asks for, if any."""
        handlers = self.plan[_ON_ERROR]
        if not handlers or not self.tree.first_report(exc):
            return None
        ic = self.intercept_context(
            _ON_ERROR,
            ctx or self.ctx,
            error=exc,
            tool_name=tool_name,
            tool_call_id=tool_call_id,
            tool_args=tool_args,
        )
        outcome = await run_phase(_ON_ERROR, handlers, ic, ic.run_context, self.interceptor_failed)
        return outcome if isinstance(outcome, _DECIDED) else None

    async def emit(self, event: StreamEvent) -> None:
        """Send a stream event (only called when the run streams)."""
        if self.tree.emit is not None:
            await self.tree.emit(event)

    def note_failure(self, name: str) -> None:
        """Count a failed call of tool `name` (or the final answer).

        Raises:
            ToolRetriesExceeded: When its retries are exhausted.
        """
        tool_calls.count_failure(self, name)

    async def finish(self, value: Any) -> Finished:
        """Run POST_RUN on the output and return the execution's outcome.

        An execution ended mid-turn (by an interceptor) drops the calls left without a
        result, so `messages` stays usable as the next run's history.
        """
        last = self.messages[-1] if self.messages else None
        if isinstance(last, ModelResponse) and last.tool_calls:
            self.messages = history.repair_pairing(self.messages)
        handlers = self.plan[_POST_RUN]
        if handlers:
            ic = self.intercept_context(_POST_RUN, self.ctx, output=value)
            outcome = await run_phase(_POST_RUN, handlers, ic, self.ctx, self.interceptor_failed)
            if isinstance(outcome, End):
                value = outcome.output
            elif isinstance(outcome, UseValue):
                value = outcome.value
        return Finished(value)

    def spawn(
        self, sub: Agent[Any, Any], ctx: RunContext, task: str, call_id: str, trace: list[TraceEvent]
    ) -> Execution:
        """Return the execution of a subagent delegated to by this execution's call `call_id`."""
        return Execution(sub, ctx, self.tree, task, [], depth=self.depth + 1, path=(*self.path, call_id), trace=trace)

    # --- the execution ---------------------------------------------------------------

    def run(self, resume: RunState | None = None) -> Coroutine[Any, Any, ExecutionOutcome]:
        """Execute the agent under its context's deadline; `await` the coroutine this returns.

        Returning the coroutine (rather than being one) keeps one frame per execution in the
        stack every waiting run holds (see docs/performance.md, C).

        Raises:
            DeadlineExceeded: If the context's deadline passes.
            AgentRunError: And its subclasses, as `Agent.run` documents.
        """
        observer = self.tree.observer
        return self._execute(resume) if observer is None else self._observed(observer, resume)

    async def _observed(self, observer: Observer, resume: RunState | None) -> ExecutionOutcome:
        with observer.execution_span(self) as span:
            outcome = await self._execute(resume)
            span.finished(outcome)
            return outcome

    async def _execute(self, resume: RunState | None) -> ExecutionOutcome:
        deadline = context_rules.deadline_of(self.ctx)
        scope = context_rules.deadline_scope(deadline) if deadline is not None else None
        token = running.set(Running(self.ctx, self))
        try:
            with scope if scope is not None else _NO_SCOPE:
                if scope is not None:
                    await anyio.lowlevel.checkpoint_if_cancelled()  # a deadline already passed: do no work
                try:
                    # The turn loop, in this frame (each waiting run holds one frame less).
                    async with AsyncExitStack() if self.spec.toolsets else _NO_SCOPE as stack:
                        if stack is not None:
                            await self._open_toolsets(stack)
                        turn = await self._start(resume)
                        turns = 0
                        while isinstance(turn, NextTurn):
                            if turns == self.agent.max_turns:
                                raise MaxTurnsExceeded(
                                    f"Agent {self.agent.name!r} made {turns} model requests without a final answer; "
                                    "raise Agent(max_turns=...) or check why the model keeps calling tools."
                                )
                            turns += 1
                            step = await self._turn()
                            # The response's calls (or answer) run after the request's frame is gone.
                            turn = step if isinstance(step, _TURN_OUTCOMES) else await step
                    outcome = turn
                except anyio.get_cancelled_exc_class():
                    raise
                except Exception as exc:
                    outcome = await self._recover(exc)
            if scope is not None and scope.cancelled_caught:
                raise DeadlineExceeded(
                    f"Agent {self.agent.name!r} did not finish before its context's deadline ({deadline}); allow "
                    "more time or do less per run."
                )
            return outcome
        finally:
            running.reset(token)

    async def _recover(self, exc: Exception) -> ExecutionOutcome:
        """ON_ERROR for an exception that left the turns; re-raise it unless an interceptor recovers."""
        recovery = await self.on_error(exc)
        if recovery is None:
            raise exc
        self.messages = history.repair_pairing(self.messages)
        return await self.finish(recovery.output if isinstance(recovery, End) else recovery.value)

    async def _open_toolsets(self, stack: AsyncExitStack) -> None:
        tools = dict(self.tools)
        for toolset in self.spec.toolsets:
            for t in await stack.enter_async_context(toolset.open(self.ctx)):
                if t.name in tools:
                    raise UnexpectedModelBehavior(
                        f"Agent {self.agent.name!r} got a tool named {t.name!r} from {toolset!r}, but it already has "
                        "a tool with that name; give the toolset a prefix (e.g. tool_prefix=...)."
                    )
                tools[t.name] = t
        self.tools = tools
        self.all_definitions = self.definitions = [t.definition for t in tools.values()]

    async def _start(self, resume: RunState | None) -> TurnOutcome:
        """Everything before the first request: instructions, the tools' context check, PRE_RUN,
        and the input (or, on resume, the pending calls of the saved response)."""
        instructions = self.spec.instructions
        self.instructions = (
            await instructions_for(instructions, self.ctx) if isinstance(instructions, InjectedCall) else instructions
        )
        context_rules.check_context(self.agent, self.ctx, self.spec, self.tools)
        handlers = self.plan[_PRE_RUN]
        if handlers:
            ic = self.intercept_context(_PRE_RUN, self.ctx, tools=self.definitions, model=self.model)
            outcome = await run_phase(_PRE_RUN, handlers, ic, self.ctx, self.interceptor_failed)
            if isinstance(outcome, _DECIDED):
                return await self.finish(outcome.output if isinstance(outcome, End) else outcome.value)
            if ic.messages is not self.messages:
                self.messages = history.repair_pairing(ic.messages)
                self.start = len(self.messages)
            if ic.tools is not self.definitions:
                self.definitions = list(ic.tools or ())
            self.model = ic.model or self.model
        if resume is None:
            prompt = object.__new__(UserPrompt)  # skips the keyword dict of a class call (once per execution)
            UserPrompt.__init__(prompt, content=self.task)
            self.messages.append(prompt)
            return NEXT_TURN
        self.messages = list(resume.messages)
        self.start = resume.new_message_index
        last = self.messages[-1]
        assert isinstance(last, ModelResponse)  # checked by resume.check_state
        return await tool_calls.run_calls(self, last.tool_calls, self._gate(self.definitions), resume)

    def _gate(self, offered: list[ToolDefinition]) -> frozenset[str] | None:
        """The names calls are allowed to, when interceptors narrowed what is offered."""
        if offered is self.all_definitions:
            return None
        return frozenset(d.name for d in offered)

    def _params(self, offered: list[ToolDefinition]) -> ModelRequestParameters:
        """The request's parameters: the agent's shared ones while nothing of this execution changes
        them (models treat them as read-only), else this execution's own."""
        params = self.params
        if params is not None and params.tools is offered and params.instructions is self.instructions:
            return params
        spec, agent = self.spec, self.agent
        shared = spec.params
        if (
            shared is not None
            and shared.tools is offered
            and shared.instructions is self.instructions
            and shared.agent_name is agent.name
            and shared.parallel_tool_calls is agent.parallel_tool_calls
        ):
            params = shared
        else:
            output_spec = spec.output
            params = ModelRequestParameters(
                agent_name=agent.name,
                instructions=self.instructions,
                tools=offered,
                output_tools=[output_spec.definition] if output_spec is not None else [],
                allow_text_output=output_spec is None,
                parallel_tool_calls=agent.parallel_tool_calls,
            )
            if offered is spec.definitions and not isinstance(spec.instructions, InjectedCall):
                spec.params = params
        self.params = params
        return params

    async def _turn(self) -> TurnOutcome | Coroutine[Any, Any, TurnOutcome]:
        """One model request; return the turn's outcome, or the coroutine that handles the response
        (its calls, or its answer), which the caller awaits after this frame is gone."""
        messages, offered, model = self.messages, self.definitions, self.model
        handlers = self.plan[_PRE_THINK]
        if handlers:
            ic = self.intercept_context(_PRE_THINK, self.ctx, tools=offered, model=model)
            outcome = await run_phase(_PRE_THINK, handlers, ic, self.ctx, self.interceptor_failed)
            if isinstance(outcome, _DECIDED):
                return await self.finish(outcome.output if isinstance(outcome, End) else outcome.value)
            if ic.messages is not messages:
                messages = history.repair_pairing(ic.messages)
            offered = ic.tools if ic.tools is not None else []
            model = ic.model or model
        params = self._params(offered)
        tree = self.tree
        tree.reserve_request()
        started = time.perf_counter()
        if tree.observer is None:
            if tree.steps is None and tree.emit is None:  # the plain request, without a frame of ours
                raw = await model.request(messages, params)
            else:
                raw = await self._request(model, messages, params)
            response = history.check_response(model, raw)
        else:
            with tree.observer.request_span(self, model, messages, params) as span:
                response = history.check_response(model, await self._request(model, messages, params))
                span.response(response)
        if response.tool_calls:
            response = history.unique_call_ids(response, self.messages)
        usage = tree.usage
        usage.input_tokens += response.usage.input_tokens
        usage.output_tokens += response.usage.output_tokens
        self.messages.append(response)
        self.record(
            "model_request",
            started,
            detail=response.text,
            finish_reason=response.finish_reason,
            usage=response.usage,
        )
        handlers = self.plan[_POST_THINK]
        if handlers:
            ic = self.intercept_context(_POST_THINK, self.ctx, model_response=response)
            outcome = await run_phase(_POST_THINK, handlers, ic, self.ctx, self.interceptor_failed)
            if isinstance(outcome, _DECIDED):
                return await self.finish(outcome.output if isinstance(outcome, End) else outcome.value)
        if response.finish_reason == "length":
            return output.truncated(self, response)
        if response.tool_calls:
            return tool_calls.run_calls(self, response.tool_calls, self._gate(offered), None)
        return output.text_answer(self, response)

    async def _request(self, model: Model, messages: list[Message], params: ModelRequestParameters) -> Any:
        steps = self.tree.steps
        if steps is not None:
            return await steps.request(self, model, messages, params)
        if self.tree.emit is None:
            return await model.request(messages, params)
        return await self._stream_request(model, messages, params)

    async def _stream_request(self, model: Model, messages: list[Message], params: ModelRequestParameters) -> Any:
        response: Any = None
        stream = model.request_stream(messages, params)
        try:
            async for item in stream:
                if isinstance(item, TextDelta):
                    await self.emit(TextDeltaEvent(agent=self.agent.name, depth=self.depth, text=item.text))
                elif isinstance(item, ReasoningDelta):
                    await self.emit(ReasoningDeltaEvent(agent=self.agent.name, depth=self.depth, text=item.text))
                else:
                    response = item
        finally:  # close the model's stream (and its HTTP response) now, even when cancelled
            aclose = getattr(stream, "aclose", None)
            if aclose is not None:
                with anyio.CancelScope(shield=True):
                    await aclose()
        if response is None:
            raise UnexpectedModelBehavior(f"Model {model.name!r} ended its stream without a response.")
        return response
