"""Interceptors: every phase fires, and every result kind has its documented effect."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from cogent import (
    Agent,
    ContextTypeError,
    FunctionModel,
    InterceptContext,
    Interceptor,
    InterceptResult,
    Phase,
    RunContext,
    ScriptedModel,
    StopExecution,
    ToolCall,
    UserError,
    interceptor,
    tool,
)
from cogent._run import execution as execution_module
from cogent.messages import Message, ModelResponse, RetryPrompt, ToolReturn, UserPrompt
from cogent.models import ModelRequestParameters

pytestmark = pytest.mark.anyio


@dataclass
class TenantContext(RunContext):
    """A context with one required field."""

    tenant_id: str


@dataclass
class OtherContext(RunContext):
    """A context class unrelated to `TenantContext`."""

    region: str = "eu"


@dataclass(kw_only=True)
class Request:
    """One model request as the model saw it."""

    messages: list[Message]
    tools: list[str]


def recording_model(*steps: Any, name: str = "model") -> tuple[FunctionModel, list[Request]]:
    """Return a model that plays `steps` in order (a callable step is called with the history) and records requests."""
    requests: list[Request] = []

    def respond(messages: list[Message], info: ModelRequestParameters) -> Any:
        requests.append(Request(messages=list(messages), tools=[t.name for t in info.tools]))
        step = steps[len(requests) - 1]
        return step(messages) if callable(step) else step

    return FunctionModel(respond, name=name), requests


def last_tool_result(messages: list[Message]) -> str:
    """Return the content of the last tool result the model received."""
    return next(m.content for m in reversed(messages) if isinstance(m, ToolReturn | RetryPrompt))


def echo(messages: list[Message]) -> str:
    """A final answer that repeats the last tool result, so tests can see what the model saw."""
    return f"saw {last_tool_result(messages)}"


class PhaseLog(Interceptor):
    """Records (label, phase, agent, tool) for every phase."""

    def __init__(self, log: list[tuple[str, Phase, str, str | None]], label: str = "log") -> None:
        self.log = log
        self.label = label

    async def intercept(self, phase: Phase, context: InterceptContext) -> InterceptResult | None:
        self.log.append((self.label, phase, context.agent.name, context.tool_name))
        return None


def returning(phase: Phase, result: InterceptResult | Callable[[], InterceptResult]) -> Interceptor:
    """Return an interceptor that returns `result` (or raises what the callable raises) in `phase`."""

    @interceptor(phase)
    def handler(call: InterceptContext) -> InterceptResult:
        return result() if callable(result) else result

    return handler


@dataclass(kw_only=True)
class Lookup:
    """A `lookup` tool that records its runs and fails for the key "bad"."""

    runs: list[str]

    def tool(self) -> Any:
        runs = self.runs

        @tool
        def lookup(key: str) -> str:
            """Look a key up."""
            runs.append(key)
            if key == "bad":
                raise RuntimeError("boom")
            return f"value of {key}"

        return lookup


# --- every phase fires ------------------------------------------------------------------


async def test_pre_and_post_run_fire_once_per_agent_execution() -> None:
    """PRE_RUN and POST_RUN fire once for the top-level agent and once per delegated execution."""
    log: list[tuple[str, Phase, str, str | None]] = []
    sub_model, _ = recording_model("sub one", "sub two")
    sub = Agent(name="sub", model=sub_model, description="Helps.")
    model, _ = recording_model([ToolCall("sub", {"task": "a"})], [ToolCall("sub", {"task": "b"})], "done")
    agent = Agent(name="main", model=model, subagents=[sub])
    result = await agent.run("go", interceptors=[PhaseLog(log)])
    assert result.output == "done"
    runs = [(phase, name) for _, phase, name, _ in log if phase in (Phase.PRE_RUN, Phase.POST_RUN)]
    assert runs == [
        (Phase.PRE_RUN, "main"),
        (Phase.PRE_RUN, "sub"),
        (Phase.POST_RUN, "sub"),
        (Phase.PRE_RUN, "sub"),
        (Phase.POST_RUN, "sub"),
        (Phase.POST_RUN, "main"),
    ]


async def test_every_phase_sees_every_field_set() -> None:
    """In every phase each field of the InterceptContext is set (to None where it does not apply)."""
    seen: dict[Phase, dict[str, Any]] = {}

    class Snapshot(Interceptor):
        async def intercept(self, phase: Phase, context: InterceptContext) -> InterceptResult | None:
            seen.setdefault(phase, {f.name: getattr(context, f.name) for f in dataclasses.fields(context)})
            return None

    runs: list[str] = []
    model, _ = recording_model(ToolCall("lookup", {"key": "a"}), ToolCall("lookup", {"key": "bad"}), "done")
    agent = Agent(name="a", model=model, tools=[Lookup(runs=runs).tool()])
    await agent.run("go", interceptors=[Snapshot()])
    assert set(seen) == set(Phase)
    assert seen[Phase.PRE_ACT]["tool_name"] == "lookup" and seen[Phase.PRE_ACT]["tool_args"] == {"key": "a"}
    assert seen[Phase.POST_ACT]["tool_result"] == "value of a"
    assert isinstance(seen[Phase.ON_ERROR]["error"], RuntimeError)
    assert seen[Phase.PRE_RUN]["tool_name"] is None and seen[Phase.PRE_RUN]["task"] == "go"


async def test_think_phases_fire_per_model_request() -> None:
    """PRE_THINK and POST_THINK fire around each model request; POST_THINK sees the response."""
    responses: list[ModelResponse | None] = []

    @interceptor(Phase.PRE_THINK, Phase.POST_THINK)
    def watch(call: InterceptContext) -> None:
        responses.append(call.model_response)

    runs: list[str] = []
    model, requests = recording_model(ToolCall("lookup", {"key": "a"}), ToolCall("lookup", {"key": "b"}), "done")
    agent = Agent(name="a", model=model, tools=[Lookup(runs=runs).tool()], interceptors=[watch])
    await agent.run("go")
    assert len(requests) == 3
    assert [r is None for r in responses] == [True, False] * 3
    assert [r.text for r in responses[1::2] if r is not None] == [None, None, "done"]


async def test_act_phases_fire_per_tool_call() -> None:
    """PRE_ACT and POST_ACT fire once per tool call, with the arguments and (POST_ACT) the result."""
    seen: list[tuple[Phase, str | None, dict[str, Any] | None, str | None]] = []

    @interceptor(Phase.PRE_ACT, Phase.POST_ACT)
    def watch(call: InterceptContext) -> None:
        seen.append((call.phase, call.tool_name, call.tool_args, call.tool_result))

    runs: list[str] = []
    model, _ = recording_model(
        [ToolCall("lookup", {"key": "a"}), ToolCall("lookup", {"key": "b"})], ToolCall("lookup", {"key": "c"}), "done"
    )
    agent = Agent(
        name="a", model=model, tools=[Lookup(runs=runs).tool()], interceptors=[watch], parallel_tool_calls=False
    )
    await agent.run("go")
    assert seen == [
        (phase, "lookup", {"key": key}, None if phase is Phase.PRE_ACT else f"value of {key}")
        for key in "abc"
        for phase in (Phase.PRE_ACT, Phase.POST_ACT)
    ]


async def test_on_error_receives_a_tool_exception() -> None:
    """ON_ERROR receives the tool's exception with the tool's name; the model then gets the error result."""
    errors: list[tuple[BaseException | None, str | None]] = []

    @interceptor(Phase.ON_ERROR)
    def on_error(call: InterceptContext) -> None:
        errors.append((call.error, call.tool_name))

    runs: list[str] = []
    model, _ = recording_model(ToolCall("lookup", {"key": "bad"}), echo)
    agent = Agent(name="a", model=model, tools=[Lookup(runs=runs).tool()], interceptors=[on_error])
    result = await agent.run("go")
    assert result.output == "saw Error: boom"
    [(error, tool_name)] = errors
    assert isinstance(error, RuntimeError) and str(error) == "boom"
    assert tool_name == "lookup"


async def test_on_error_receives_a_model_error() -> None:
    """ON_ERROR receives the exception the model raised, and the run then raises it."""
    failure = ConnectionError("model unreachable")
    errors: list[BaseException | None] = []

    def broken(messages: list[Message], info: ModelRequestParameters) -> str:
        raise failure

    @interceptor(Phase.ON_ERROR)
    def on_error(call: InterceptContext) -> None:
        errors.append(call.error)

    agent = Agent(name="a", model=FunctionModel(broken), interceptors=[on_error])
    with pytest.raises(ConnectionError):
        await agent.run("go")
    assert errors == [failure]


@pytest.mark.parametrize("phase", [Phase.PRE_RUN, Phase.PRE_THINK, Phase.POST_THINK, Phase.PRE_ACT, Phase.POST_ACT])
async def test_on_error_receives_an_interceptor_error_once(phase: Phase) -> None:
    """An exception raised by an interceptor reaches ON_ERROR exactly once, then propagates out of run()."""
    failure = KeyError("interceptor bug")
    errors: list[BaseException | None] = []

    def fail() -> InterceptResult:
        raise failure

    @interceptor(Phase.ON_ERROR)
    def on_error(call: InterceptContext) -> None:
        errors.append(call.error)

    runs: list[str] = []
    model, _ = recording_model(ToolCall("lookup", {"key": "a"}), "done")
    agent = Agent(
        name="a", model=model, tools=[Lookup(runs=runs).tool()], interceptors=[returning(phase, fail), on_error]
    )
    with pytest.raises(KeyError):
        await agent.run("go")
    assert errors == [failure]


# --- stop and StopExecution ----------------------------------------------------------------

# phase -> (model requests made, tool runs) when that phase ends the run with stop.
STOP_CASES = {
    Phase.PRE_RUN: (0, 0),
    Phase.PRE_THINK: (0, 0),
    Phase.POST_THINK: (1, 0),
    Phase.POST_ACT: (1, 1),
    Phase.ON_ERROR: (1, 1),
    Phase.POST_RUN: (2, 1),
}


@pytest.mark.parametrize("how", ["result", "raise"])
@pytest.mark.parametrize("phase", list(STOP_CASES))
async def test_stop_outside_pre_act_ends_the_run_with_the_response(phase: Phase, how: str) -> None:
    """`stop(response)`, or raising `StopExecution(response)`, outside PRE_ACT ends the run with output `response`."""

    def stop() -> InterceptResult:
        if how == "raise":
            raise StopExecution("stopped")
        return InterceptResult.stop("stopped")

    runs: list[str] = []
    key = "bad" if phase is Phase.ON_ERROR else "a"
    model, requests = recording_model(ToolCall("lookup", {"key": key}), "model answer")
    agent = Agent(name="a", model=model, tools=[Lookup(runs=runs).tool()], interceptors=[returning(phase, stop)])
    result = await agent.run("go")
    assert result.output == "stopped"
    assert (len(requests), len(runs)) == STOP_CASES[phase]
    assert_well_paired(result.messages)  # usable as the next run's message_history


@pytest.mark.parametrize("how", ["result", "raise"])
async def test_stop_in_pre_act_replaces_the_tool_result(how: str) -> None:
    """`stop(response)` or `StopExecution` in PRE_ACT: the tool does not run and `response` becomes its result."""

    def stop() -> InterceptResult:
        if how == "raise":
            raise StopExecution({"refused": True})
        return InterceptResult.stop({"refused": True})

    runs: list[str] = []
    model, requests = recording_model(ToolCall("lookup", {"key": "a"}), echo)
    agent = Agent(
        name="a", model=model, tools=[Lookup(runs=runs).tool()], interceptors=[returning(Phase.PRE_ACT, stop)]
    )
    result = await agent.run("go")
    assert runs == []
    assert result.output == 'saw {"refused":true}'
    assert len(requests) == 2


async def test_a_stop_after_some_calls_keeps_their_results_and_the_responses_text() -> None:
    """A POST_ACT stop on the second of two sequential calls ends the run keeping the first call, its result and the
    response's text; the call left without a result is dropped, so the history stays usable as message_history."""

    @interceptor(Phase.POST_ACT)
    def stop_at_b(call: InterceptContext) -> InterceptResult | None:
        return InterceptResult.stop("stopped") if call.tool_args == {"key": "b"} else None

    def agent_for(response: ModelResponse, runs: list[str]) -> Agent[Any, Any]:
        return Agent(
            name="a",
            model=ScriptedModel([response, "unused"]),
            tools=[Lookup(runs=runs).tool()],
            interceptors=[stop_at_b],
            parallel_tool_calls=False,
        )

    runs: list[str] = []
    both = ModelResponse(
        text="Looking both up.",
        tool_calls=[ToolCall("lookup", {"key": "a"}, "c1"), ToolCall("lookup", {"key": "b"}, "c2")],
    )
    result = await agent_for(both, runs).run("go")
    assert (result.output, runs) == ("stopped", ["a", "b"])
    response = result.messages[1]
    assert isinstance(response, ModelResponse)
    assert (response.text, [c.id for c in response.tool_calls]) == ("Looking both up.", ["c1"])
    assert [(m.tool_call_id, m.content) for m in result.messages if isinstance(m, ToolReturn)] == [("c1", "value of a")]
    assert_well_paired(result.messages)

    only = ModelResponse(text="Looking b up.", tool_calls=[ToolCall("lookup", {"key": "b"}, "c3")])
    result = await agent_for(only, []).run("go")
    assert [(type(m).__name__, getattr(m, "text", None)) for m in result.messages] == [
        ("UserPrompt", None),
        ("ModelResponse", "Looking b up."),
    ]
    assert result.messages[1].tool_calls == []  # type: ignore[union-attr]


async def test_the_first_stop_wins() -> None:
    """In calling order the first stop wins and later handlers of that phase are not called (POST_* run in reverse)."""
    called: list[str] = []

    def stopper(phase: Phase, label: str) -> Interceptor:
        @interceptor(phase)
        def handler(call: InterceptContext) -> InterceptResult:
            called.append(label)
            return InterceptResult.stop(label)

        return handler

    agent = Agent(name="a", model=ScriptedModel(["answer"]), interceptors=[stopper(Phase.PRE_THINK, "first")])
    result = await agent.run("go", interceptors=[stopper(Phase.PRE_THINK, "second")])
    assert (result.output, called) == ("first", ["first"])
    called.clear()
    agent = Agent(
        name="a",
        model=ScriptedModel(["answer"]),
        interceptors=[stopper(Phase.POST_RUN, "a"), stopper(Phase.POST_RUN, "b")],
    )
    result = await agent.run("go")
    assert (result.output, called) == ("b", ["b"])


# --- skip -------------------------------------------------------------------------------------

# (phase, skip value, tool key, expected output, model requests, tool runs)
SKIP_CASES = [
    (Phase.PRE_RUN, "S", "a", "S", 0, 0),
    (Phase.PRE_RUN, None, "a", None, 0, 0),
    (Phase.PRE_THINK, "S", "a", "S", 0, 0),
    (Phase.POST_THINK, "S", "a", "S", 1, 0),
    (Phase.POST_THINK, None, "a", "saw value of a", 2, 1),
    (Phase.PRE_ACT, "R", "a", "saw R", 2, 0),
    (Phase.PRE_ACT, None, "a", "saw Tool call 'lookup' was skipped by an interceptor.", 2, 0),
    (Phase.POST_ACT, "R", "a", "saw R", 2, 1),
    (Phase.POST_ACT, None, "a", "saw value of a", 2, 1),
    (Phase.POST_RUN, "S", "a", "S", 2, 1),
    (Phase.POST_RUN, None, "a", "saw value of a", 2, 1),
    (Phase.ON_ERROR, "R", "bad", "saw R", 2, 1),
    (Phase.ON_ERROR, None, "bad", "saw Error: boom", 2, 1),
]


@pytest.mark.parametrize(("phase", "value", "key", "output", "requests_made", "tool_runs"), SKIP_CASES)
async def test_skip_has_its_documented_effect_in_each_phase(
    phase: Phase, value: str | None, key: str, output: str | None, requests_made: int, tool_runs: int
) -> None:
    """`skip(result)` replaces the phase's step by `result` as InterceptResult.skip documents, per phase."""
    runs: list[str] = []
    model, requests = recording_model(ToolCall("lookup", {"key": key}), echo)
    skip = returning(phase, InterceptResult.skip(value))
    agent = Agent(name="a", model=model, tools=[Lookup(runs=runs).tool()], interceptors=[skip])
    result = await agent.run("go")
    assert result.output == output
    assert (len(requests), len(runs)) == (requests_made, tool_runs)
    assert_well_paired(result.messages)
    if output is not None and output.startswith("saw "):  # the trace shows what the model received
        assert [e.detail for e in result.trace if e.tool_name == "lookup"][-1] == output.removeprefix("saw ")


async def test_post_act_replaces_a_subagents_answer() -> None:
    """POST_ACT `skip(result)` replaces a delegation's result too: the parent's model receives the replacement."""
    sub = Agent(name="researcher", description="Researches.", model=ScriptedModel(["the raw finding"]))
    model, _ = recording_model(ToolCall("researcher", {"task": "find"}), echo)
    redact = returning(Phase.POST_ACT, InterceptResult.skip("[redacted]"))
    result = await Agent(name="lead", model=model, subagents=[sub], interceptors=[redact]).run("go")
    assert result.output == "saw [redacted]"


async def test_skip_in_on_error_turns_a_model_error_into_the_output() -> None:
    """ON_ERROR `skip(result)` for a model error swallows it, makes `result` the output, and POST_RUN still fires."""

    def broken(messages: list[Message], info: ModelRequestParameters) -> str:
        raise ConnectionError("model unreachable")

    log: list[tuple[str, Phase, str, str | None]] = []
    recover = returning(Phase.ON_ERROR, InterceptResult.skip("fallback"))
    agent = Agent(name="a", model=FunctionModel(broken), interceptors=[recover, PhaseLog(log)])
    result = await agent.run("go")
    assert result.output == "fallback"
    assert [phase for _, phase, _, _ in log] == [Phase.PRE_RUN, Phase.PRE_THINK, Phase.ON_ERROR, Phase.POST_RUN]


# --- modify_args, modify_messages, modify_tools, use_model -----------------------------------------


async def test_modify_args_changes_and_revalidates_the_arguments() -> None:
    """PRE_ACT `modify_args` merges into the arguments, which are validated again (coerced to the tool's types)."""
    received: list[tuple[int, int]] = []

    @tool
    def add(a: int, b: int) -> int:
        """Add two numbers."""
        received.append((a, b))
        return a + b

    model, _ = recording_model(ToolCall("add", {"a": 1, "b": 2}), echo)
    agent = Agent(
        name="a", model=model, tools=[add], interceptors=[returning(Phase.PRE_ACT, InterceptResult.modify_args(b="40"))]
    )
    result = await agent.run("go")
    assert received == [(1, 40)]
    assert result.output == "saw 41"


async def test_modify_args_with_invalid_arguments_fails_clearly() -> None:
    """Arguments an interceptor made invalid raise a UserError naming the tool, and the tool does not run."""
    runs: list[str] = []
    model, _ = recording_model(ToolCall("lookup", {"key": "a"}), echo)
    bad = returning(Phase.PRE_ACT, InterceptResult.modify_args(key=["not", "a", "string"]))
    agent = Agent(name="a", model=model, tools=[Lookup(runs=runs).tool()], interceptors=[bad])
    with pytest.raises(UserError, match=r"modify_args\(\).*'lookup'.*key"):
        await agent.run("go")
    assert runs == []


async def test_modify_messages_changes_the_request_not_the_history() -> None:
    """PRE_THINK `modify_messages` changes what the model receives; the run's history keeps the original."""

    @interceptor(Phase.PRE_THINK)
    def redact(call: InterceptContext) -> InterceptResult:
        return InterceptResult.modify_messages([UserPrompt(content="[redacted]")])

    model, requests = recording_model("ok")
    agent = Agent(name="a", model=model, interceptors=[redact])
    result = await agent.run("my password is hunter2")
    assert [m.content for m in requests[0].messages if isinstance(m, UserPrompt)] == ["[redacted]"]
    assert isinstance(result.messages[0], UserPrompt) and result.messages[0].content == "my password is hunter2"


def assert_well_paired(messages: list[Message]) -> None:
    """Every tool result answers an earlier call, and every call but the last response's has a result."""
    calls = [c.id for m in messages if isinstance(m, ModelResponse) for c in m.tool_calls]
    returns = [m.tool_call_id for m in messages if isinstance(m, ToolReturn | RetryPrompt) and m.tool_call_id]
    assert set(returns) <= set(calls)
    assert set(calls) <= set(returns)


@pytest.mark.parametrize("drop", ["response", "tool_return"])
async def test_modify_messages_keeps_tool_calls_and_returns_paired(drop: str) -> None:
    """Dropping a tool-call response (or its tool return) in PRE_THINK removes the other half from the request too."""

    @interceptor(Phase.PRE_THINK)
    def prune(call: InterceptContext) -> InterceptResult:
        if drop == "response":
            kept = [m for m in call.messages if not (isinstance(m, ModelResponse) and m.tool_calls)]
        else:
            kept = [m for m in call.messages if not isinstance(m, ToolReturn)]
        return InterceptResult.modify_messages(kept)

    runs: list[str] = []
    model, requests = recording_model(ToolCall("lookup", {"key": "a"}), "done")
    agent = Agent(name="a", model=model, tools=[Lookup(runs=runs).tool()], interceptors=[prune])
    await agent.run("go")
    second = requests[1].messages
    assert not any(isinstance(m, ToolReturn) for m in second)
    assert not any(isinstance(m, ModelResponse) and m.tool_calls for m in second)
    assert_well_paired(second)


async def test_modify_messages_in_pre_run_keeps_the_history_well_paired() -> None:
    """PRE_RUN `modify_messages` replaces the history; a dropped response takes its tool returns along."""
    previous = await Agent(
        name="a", model=ScriptedModel([ToolCall("lookup", {"key": "a"}), "first"]), tools=[Lookup(runs=[]).tool()]
    ).run("first question")

    @interceptor(Phase.PRE_RUN)
    def forget_calls(call: InterceptContext) -> InterceptResult:
        return InterceptResult.modify_messages(
            [m for m in call.messages if not (isinstance(m, ModelResponse) and m.tool_calls)]
        )

    model, requests = recording_model("second")
    agent = Agent(name="a", model=model, tools=[Lookup(runs=[]).tool()], interceptors=[forget_calls])
    result = await agent.run("second question", message_history=previous.messages)
    sent = requests[0].messages
    assert [type(m).__name__ for m in sent] == ["UserPrompt", "ModelResponse", "UserPrompt"]
    assert_well_paired(sent)
    assert [type(m).__name__ for m in result.new_messages()] == ["UserPrompt", "ModelResponse"]


async def test_modify_tools_hides_the_tool_and_refuses_calls_to_it() -> None:
    """PRE_THINK `modify_tools` removes a tool from the request, and a call to it anyway is refused."""
    runs: list[str] = []

    @tool
    def safe() -> str:
        """A harmless tool."""
        return "safe"

    @interceptor(Phase.PRE_THINK)
    def gate(call: InterceptContext) -> InterceptResult:
        return InterceptResult.modify_tools([t for t in call.tools or [] if t.name != "lookup"])

    model, requests = recording_model(ToolCall("lookup", {"key": "a"}), echo)
    agent = Agent(name="a", model=model, tools=[Lookup(runs=runs).tool(), safe], interceptors=[gate])
    result = await agent.run("go")
    assert requests[0].tools == ["safe"]
    assert runs == []
    refusal = "Error: Tool 'lookup' is not available now; use one of the tools offered."
    assert result.output == f"saw {refusal}"
    assert [(e.kind, e.detail) for e in result.trace if e.tool_name == "lookup"] == [("tool_error", refusal)]


async def test_modify_tools_in_pre_run_applies_to_every_request() -> None:
    """PRE_RUN `modify_tools` offers only the listed tools in every request of the execution."""
    runs: list[str] = []

    @tool
    def safe() -> str:
        """A harmless tool."""
        return "safe"

    model, requests = recording_model(ToolCall("safe", {}), ToolCall("lookup", {"key": "a"}), echo)
    only_safe = returning(Phase.PRE_RUN, InterceptResult.modify_tools(["safe"]))
    agent = Agent(name="a", model=model, tools=[Lookup(runs=runs).tool(), safe], interceptors=[only_safe])
    result = await agent.run("go")
    assert [r.tools for r in requests] == [["safe"]] * 3
    assert runs == []
    assert result.output.startswith("saw Error: Tool 'lookup' is not available")


async def test_use_model_changes_the_model_that_answers() -> None:
    """PRE_THINK `use_model` sends that request to another model; the agent's model is not called for it."""
    primary, primary_requests = recording_model(ToolCall("lookup", {"key": "a"}), name="primary")
    backup, backup_requests = recording_model("from backup", name="backup")

    @interceptor(Phase.PRE_THINK)
    def switch(call: InterceptContext) -> InterceptResult | None:
        return InterceptResult.use_model(backup) if call.messages[-1].kind == "tool_return" else None

    agent = Agent(name="a", model=primary, tools=[Lookup(runs=[]).tool()], interceptors=[switch])
    result = await agent.run("go")
    assert (len(primary_requests), len(backup_requests)) == (1, 1)
    assert result.output == "from backup"
    assert [m.model_name for m in result.messages if isinstance(m, ModelResponse)] == ["primary", "backup"]


async def test_use_model_in_pre_run_applies_to_the_whole_execution() -> None:
    """PRE_RUN `use_model` makes another model answer every request of the execution."""
    primary, primary_requests = recording_model(name="primary")
    backup, backup_requests = recording_model(ToolCall("lookup", {"key": "a"}), "done", name="backup")
    switch = returning(Phase.PRE_RUN, InterceptResult.use_model(backup))
    agent = Agent(name="a", model=primary, tools=[Lookup(runs=[]).tool()], interceptors=[switch])
    result = await agent.run("go")
    assert (len(primary_requests), len(backup_requests), result.output) == (0, 2, "done")


@pytest.mark.parametrize(
    ("phase", "result"),
    [
        (Phase.PRE_THINK, InterceptResult.modify_args(key="x")),
        (Phase.PRE_ACT, InterceptResult.modify_messages([])),
        (Phase.POST_THINK, InterceptResult.modify_tools([])),
        (Phase.POST_ACT, InterceptResult.use_model("test")),
    ],
)
async def test_a_modification_in_a_phase_where_it_has_no_effect_is_an_error(
    phase: Phase, result: InterceptResult
) -> None:
    """A modify/use_model result returned from a phase it cannot affect raises a UserError naming the right phases."""
    model, _ = recording_model(ToolCall("lookup", {"key": "a"}), "done")
    agent = Agent(name="a", model=model, tools=[Lookup(runs=[]).tool()], interceptors=[returning(phase, result)])
    with pytest.raises(UserError, match=f"which has no effect in {phase.name}"):
        await agent.run("go")


# --- order ------------------------------------------------------------------------------------


async def test_pre_phases_run_in_list_order_and_post_phases_in_reverse() -> None:
    """Agent-level then run-level interceptors run in list order for PRE_*, in reverse order for POST_*."""
    log: list[tuple[str, Phase, str, str | None]] = []
    model, _ = recording_model(ToolCall("lookup", {"key": "a"}), "done")
    agent = Agent(
        name="a", model=model, tools=[Lookup(runs=[]).tool()], interceptors=[PhaseLog(log, "A"), PhaseLog(log, "B")]
    )
    await agent.run("go", interceptors=[PhaseLog(log, "C")])
    for phase in Phase:
        if phase is Phase.ON_ERROR:
            continue
        order = [label for label, p, _, _ in log if p is phase][:3]
        assert order == (["A", "B", "C"] if phase.name.startswith("PRE") else ["C", "B", "A"]), phase


# --- the run context by injection -----------------------------------------------------------------


def sync_function(seen: list[RunContext]) -> Interceptor:
    @interceptor(Phase.PRE_ACT)
    def gate(call: InterceptContext, ctx: TenantContext) -> None:
        seen.append(ctx)

    return gate


def async_function(seen: list[RunContext]) -> Interceptor:
    @interceptor(Phase.PRE_ACT)
    async def gate(ctx: TenantContext, call: InterceptContext) -> None:
        await anyio.lowlevel.checkpoint()
        seen.append(ctx)

    return gate


def phase_method(seen: list[RunContext]) -> Interceptor:
    class Gate(Interceptor):
        async def pre_act(self, context: InterceptContext, tenant: TenantContext) -> None:  # type: ignore[override]
            seen.append(tenant)

    return Gate()


def intercept_method(seen: list[RunContext]) -> Interceptor:
    class Gate(Interceptor):
        def intercept(self, phase: Phase, context: InterceptContext, ctx: TenantContext) -> None:  # type: ignore[override]
            if phase is Phase.PRE_ACT:
                seen.append(ctx)

    return Gate()


@pytest.mark.parametrize("make", [sync_function, async_function, phase_method, intercept_method])
async def test_interceptors_receive_the_run_context_by_injection(
    make: Callable[[list[RunContext]], Interceptor],
) -> None:
    """Interceptor functions and methods, sync or async, receive the context the tools receive, by annotation."""
    seen: list[RunContext] = []
    tool_contexts: list[RunContext] = []

    @tool
    def whoami(ctx: TenantContext) -> str:
        """Return the tenant."""
        tool_contexts.append(ctx)
        return ctx.tenant_id

    agent = Agent(
        name="a", model=ScriptedModel([ToolCall("whoami", {}), "done"]), tools=[whoami], interceptors=[make(seen)]
    )
    result = await agent.run("go", context=TenantContext(tenant_id="t-1"))
    assert len(seen) == 1
    assert seen[0] is tool_contexts[0] is result.context


async def test_an_interceptor_annotated_with_another_context_class_raises_context_type_error() -> None:
    """An interceptor annotated with a context class the run's context is not raises ContextTypeError naming it."""

    @interceptor(Phase.PRE_RUN)
    def needs_other(call: InterceptContext, ctx: OtherContext) -> None:
        raise AssertionError("must not be called")

    agent = Agent(name="a", model=ScriptedModel(["done"]), interceptors=[needs_other])
    with pytest.raises(ContextTypeError, match=r"needs_other.*OtherContext.*TenantContext"):
        await agent.run("go", context=TenantContext(tenant_id="t-1"))


async def test_an_interceptor_with_the_wrong_number_of_parameters_is_a_user_error() -> None:
    """An interceptor function or method that does not take exactly the InterceptContext (besides the run context) is
    refused with a UserError that names it and its parameters, before it is ever called wrongly."""
    with pytest.raises(UserError, match=r"gate \(in PRE_ACT\) must take 1 parameter\(s\).*takes 2 \(call, extra\)"):

        @interceptor(Phase.PRE_ACT)
        def gate(call: InterceptContext, extra: str, ctx: RunContext) -> None:
            return None

    with pytest.raises(UserError, match=r"takes 0 \(none\)"):

        @interceptor(Phase.PRE_ACT)
        def nothing(ctx: RunContext) -> None:
            return None

    class TooMany(Interceptor):
        def pre_act(self, context: InterceptContext, extra: str) -> None:  # type: ignore[override]
            return None

    class Intercepts(Interceptor):
        def intercept(self, phase: Phase) -> None:  # type: ignore[override]
            return None

    for wrong, name in ((TooMany(), "TooMany.pre_act"), (Intercepts(), "Intercepts.intercept")):
        with pytest.raises(UserError, match=rf"Interceptor .*{name} must take"):
            Agent(name="a", model="test", interceptors=[wrong])
        with pytest.raises(UserError, match=rf"Interceptor .*{name} must take"):
            await Agent(name="a", model="test").run("go", interceptors=[wrong])


# --- subagents, concurrency, cost ---------------------------------------------------------------


async def test_run_level_interceptors_see_subagents_and_agent_level_ones_do_not() -> None:
    """Delegation works with interceptors; run-level ones see the subagent's phases, agent-level ones do not."""
    agent_log: list[tuple[str, Phase, str, str | None]] = []
    run_log: list[tuple[str, Phase, str, str | None]] = []
    runs: list[str] = []
    sub = Agent(
        name="researcher",
        description="Looks things up.",
        model=ScriptedModel([ToolCall("lookup", {"key": "x"}), "found x"]),
        tools=[Lookup(runs=runs).tool()],
    )
    model, _ = recording_model(ToolCall("researcher", {"task": "find x"}), echo)
    parent = Agent(name="lead", model=model, subagents=[sub], interceptors=[PhaseLog(agent_log)])
    result = await parent.run("go", interceptors=[PhaseLog(run_log)])
    assert result.output == "saw found x"
    assert runs == ["x"]
    assert {name for _, _, name, _ in agent_log} == {"lead"}
    assert {name for _, _, name, _ in run_log} == {"lead", "researcher"}
    assert (Phase.PRE_ACT, "researcher", "lookup") in {(p, n, t) for _, p, n, t in run_log}


async def test_interceptors_never_serialize_tool_calls() -> None:
    """Two tools that must both be running at once complete with a PRE_ACT interceptor present."""
    inside = 0
    both_inside = anyio.Event()

    async def meet() -> str:
        nonlocal inside
        inside += 1
        if inside == 2:
            both_inside.set()
        with anyio.fail_after(5):
            await both_inside.wait()
        return "met"

    @tool
    async def left() -> str:
        """One side."""
        return await meet()

    @tool
    async def right() -> str:
        """The other side."""
        return await meet()

    @interceptor(Phase.PRE_ACT)
    async def slow_gate(call: InterceptContext) -> None:
        await anyio.sleep(0.01)

    model, _ = recording_model([ToolCall("left", {}), ToolCall("right", {})], "done")
    agent = Agent(name="a", model=model, tools=[left, right], interceptors=[slow_gate])
    result = await agent.run("go")
    assert result.output == "done"
    assert [m.content for m in result.messages if isinstance(m, ToolReturn)] == ["met", "met"]


async def test_a_pre_act_only_interceptor_costs_nothing_in_other_phases(monkeypatch: pytest.MonkeyPatch) -> None:
    """An interceptor overriding only pre_act is called per tool call; no InterceptContext is built for other phases."""
    built: list[Phase] = []
    real = execution_module.Execution.intercept_context

    def building(self: Any, phase: Phase, *args: Any, **fields: Any) -> InterceptContext:
        built.append(phase)
        return real(self, phase, *args, **fields)

    monkeypatch.setattr(execution_module.Execution, "intercept_context", building)

    class CountCalls(Interceptor):
        calls = 0

        def pre_act(self, context: InterceptContext) -> None:
            self.calls += 1

    counter = CountCalls()
    runs: list[str] = []
    model, _ = recording_model([ToolCall("lookup", {"key": "a"}), ToolCall("lookup", {"key": "bad"})], "done")
    agent = Agent(name="a", model=model, tools=[Lookup(runs=runs).tool()], interceptors=[counter])
    await agent.run("go")
    assert counter.calls == 2
    assert built == [Phase.PRE_ACT, Phase.PRE_ACT]


async def test_a_dataclass_interceptor_keeps_its_own_state() -> None:
    """Interceptors written as (unhashable, value-equal) dataclasses work and each instance keeps its own state."""

    @dataclass
    class Counter(Interceptor):
        count: int = 0

        def pre_think(self, context: InterceptContext) -> None:
            self.count += 1

    first, second = Counter(), Counter()
    assert first == second
    await Agent(name="a", model=ScriptedModel(["done"]), interceptors=[first]).run("go")
    await Agent(name="b", model=ScriptedModel(["done"]), interceptors=[second]).run("go", interceptors=[first])
    assert (first.count, second.count) == (2, 1)
