"""The built-in interceptors: PermissionGate, ToolGate, BudgetGuard, RateLimiter and Auditor."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from cogent import Agent, ExecutionContext, FunctionModel, RunContext, ScriptedModel, ToolCall, UserError, tool
from cogent.interceptors import (
    Auditor,
    AuditRecord,
    BudgetGuard,
    Interceptor,
    PermissionGate,
    Phase,
    RateLimiter,
    ToolGate,
)
from cogent.messages import Message, ModelResponse, ToolReturn
from cogent.models import ModelRequestParameters

pytestmark = pytest.mark.anyio


@dataclass
class UserContext(RunContext):
    """Permissions and an allow-list as plain fields."""

    tenant_id: str = "acme"
    permissions: set[str] = field(default_factory=set)
    allowed_tools: set[str] = field(default_factory=set)


@dataclass
class RoleContext(RunContext):
    """Permissions and tool access decided by methods."""

    role: str = "viewer"

    def has_permission(self, permission: str) -> bool:
        return self.role == "admin" or permission == "read"

    def can_use_tool(self, name: str) -> bool:
        return self.role == "admin" or not name.startswith("delete")


@dataclass(kw_only=True)
class Toolbox:
    """Tools that record their runs: `read_file`, `delete_file`, `send_email`."""

    runs: list[str] = field(default_factory=list)

    def tools(self) -> list[Any]:
        runs = self.runs

        @tool
        def read_file(path: str) -> str:
            """Read a file."""
            runs.append(f"read {path}")
            return f"contents of {path}"

        @tool
        def delete_file(path: str) -> str:
            """Delete a file."""
            runs.append(f"delete {path}")
            return f"deleted {path}"

        @tool
        def send_email(to: str) -> str:
            """Send an email."""
            runs.append(f"email {to}")
            return f"sent to {to}"

        return [read_file, delete_file, send_email]


def tool_results(messages: list[Message]) -> list[str]:
    """The tool results the model received, in order."""
    return [m.content for m in messages if isinstance(m, ToolReturn)]


def offered_tools(requests: list[ModelRequestParameters]) -> list[list[str]]:
    """The tool names offered in each recorded request."""
    return [[t.name for t in r.tools] for r in requests]


def scripted(*steps: Any) -> tuple[FunctionModel, list[ModelRequestParameters]]:
    """A model playing `steps` by history position that records each request's parameters."""
    requests: list[ModelRequestParameters] = []
    inner = ScriptedModel(list(steps))

    async def respond(messages: list[Message], info: ModelRequestParameters) -> ModelResponse:
        requests.append(info)
        return await inner.request(messages, info)

    return FunctionModel(respond), requests


# --- PermissionGate ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("context", "allowed"),
    [
        (UserContext(permissions={"files:delete"}), True),
        (UserContext(permissions={"files:read"}), False),
        (RoleContext(role="admin"), True),
        (RoleContext(role="viewer"), False),
    ],
)
async def test_permission_gate_refuses_calls_without_the_permission(context: RunContext, allowed: bool) -> None:
    """A call runs only when the context grants the permission (via has_permission() or the attribute)."""
    box = Toolbox()
    gate = PermissionGate({"delete_file": "files:delete"})
    model, _ = scripted(ToolCall("delete_file", {"path": "a.txt"}), "done")
    agent = Agent(name="files", model=model, tools=box.tools(), interceptors=[gate])
    result = await agent.run("delete a.txt", context=context)
    [content] = tool_results(result.messages)
    if allowed:
        assert box.runs == ["delete a.txt"]
        assert content == "deleted a.txt"
    else:
        assert box.runs == []
        assert content.startswith(
            "Error: Permission denied: tool 'delete_file' requires the permission(s) 'files:delete'"
        )


async def test_permission_gate_requires_every_listed_permission_and_ignores_other_tools() -> None:
    """A tool listing several permissions needs all (the refusal names the missing ones); unlisted tools run freely."""
    box = Toolbox()
    gate = PermissionGate({"send_email": ["email:send", "contacts:read"]}, attribute="grants")

    @dataclass
    class GrantContext(RunContext):
        grants: frozenset[str] = frozenset()

    model, _ = scripted([ToolCall("send_email", {"to": "bob"}), ToolCall("read_file", {"path": "x"})], "done")
    agent = Agent(name="mail", model=model, tools=box.tools(), interceptors=[gate])
    result = await agent.run("mail bob", context=GrantContext(grants=frozenset({"email:send"})))
    refusal, read = tool_results(result.messages)
    assert "'contacts:read'" in refusal and "'email:send'" not in refusal
    assert read == "contents of x"
    assert box.runs == ["read x"]


async def test_permission_gate_without_a_way_to_read_permissions_fails_clearly() -> None:
    """A context with neither has_permission() nor the attribute raises a UserError naming the context class."""
    model, _ = scripted(ToolCall("delete_file", {"path": "a"}), "done")
    agent = Agent(
        name="files", model=model, tools=Toolbox().tools(), interceptors=[PermissionGate({"delete_file": "x"})]
    )
    with pytest.raises(UserError, match="PermissionGate cannot read permissions from RunContext"):
        await agent.run("go")


@pytest.mark.parametrize("required", [{"t": []}, {"t": [""]}, {"t": [1]}])
def test_permission_gate_rejects_an_empty_or_invalid_requirement(required: dict[str, Any]) -> None:
    """A tool mapped to no permission or to a non-string is a configuration error."""
    with pytest.raises(UserError, match="PermissionGate got"):
        PermissionGate(required)


# --- ToolGate -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "context",
    [UserContext(allowed_tools={"read_file", "send_email"}), RoleContext(role="viewer")],
)
async def test_tool_gate_hides_disallowed_tools_and_refuses_calls_to_them(context: RunContext) -> None:
    """Disallowed tools are missing from every request, and a call to one anyway does not run."""
    box = Toolbox()
    model, requests = scripted(ToolCall("delete_file", {"path": "a"}), "done")
    agent = Agent(name="files", model=model, tools=box.tools(), interceptors=[ToolGate()])
    result = await agent.run("go", context=context)
    assert offered_tools(requests) == [["read_file", "send_email"]] * 2
    assert box.runs == []
    assert tool_results(result.messages)[0].startswith("Error: Tool 'delete_file' is not")


async def test_tool_gate_refuses_a_call_revoked_after_the_request() -> None:
    """The allow-list is asked again at each call: a tool revoked after it was offered is refused at PRE_ACT."""
    box = Toolbox()

    @tool
    def lock(ctx: UserContext) -> str:
        """Lock the account."""
        ctx.allowed_tools.discard("send_email")
        return "locked"

    context = UserContext(allowed_tools={"lock", "send_email"})
    model, requests = scripted([ToolCall("lock", {}), ToolCall("send_email", {"to": "bob"})], "done")
    agent = Agent(
        name="a", model=model, tools=[*box.tools(), lock], interceptors=[ToolGate()], parallel_tool_calls=False
    )
    result = await agent.run("go", context=context)
    assert offered_tools(requests) == [["send_email", "lock"], ["lock"]]
    assert box.runs == []
    assert tool_results(result.messages) == [
        "locked",
        "Error: Tool 'send_email' is not allowed for the current user; use one of the tools offered.",
    ]


async def test_tool_gate_gates_subagents_like_tools() -> None:
    """A subagent missing from the allow-list is not offered to the parent's model."""
    sub = Agent(name="deleter", model=ScriptedModel(["deleted"]), description="Deletes.")
    model, requests = scripted("done")
    parent = Agent(name="lead", model=model, tools=Toolbox().tools()[:1], subagents=[sub], interceptors=[ToolGate()])
    await parent.run("go", context=UserContext(allowed_tools={"read_file"}))
    assert offered_tools(requests) == [["read_file"]]


async def test_tool_gate_without_an_allow_list_fails_clearly() -> None:
    """A context with neither can_use_tool() nor the attribute raises a UserError naming the context class."""
    agent = Agent(name="a", model=ScriptedModel(["done"]), tools=Toolbox().tools(), interceptors=[ToolGate()])
    with pytest.raises(UserError, match="ToolGate cannot read the allowed tools from RunContext"):
        await agent.run("go")


# --- BudgetGuard ----------------------------------------------------------------------------------


def always_calling(tool_name: str, **arguments: Any) -> tuple[FunctionModel, list[int]]:
    """A model that calls `tool_name` on every request, and the count of its requests."""
    count = [0]

    def respond(messages: list[Message], info: ModelRequestParameters) -> ToolCall:
        count[0] += 1
        return ToolCall(tool_name, arguments)

    return FunctionModel(respond), count


async def test_budget_guard_ends_the_run_at_the_model_request_cap() -> None:
    """With max_model_calls=N the Nth+1 request is not made and the output says the budget was reached."""
    box = Toolbox()
    model, count = always_calling("read_file", path="x")
    agent = Agent(name="looper", model=model, tools=box.tools(), max_turns=10)
    result = await agent.run("go", interceptors=[BudgetGuard(max_model_calls=3)])
    assert count[0] == 3
    assert result.output == (
        "The run was stopped: it reached its budget of 3 model request(s) before agent 'looper' produced an answer."
    )


async def test_budget_guard_refuses_tool_calls_beyond_the_cap_and_the_run_goes_on() -> None:
    """With max_tool_calls=2 the third call does not run, the model is told why, and it can still answer."""
    box = Toolbox()
    calls = [ToolCall("read_file", {"path": p}) for p in "abc"]
    model, _ = scripted(calls, "answered")
    guard = BudgetGuard(max_tool_calls=2)
    agent = Agent(name="a", model=model, tools=box.tools(), interceptors=[guard], parallel_tool_calls=False)
    result = await agent.run("go")
    assert box.runs == ["read a", "read b"]
    assert result.output == "answered"
    assert tool_results(result.messages)[2] == (
        "Error: Tool call refused: this run reached its budget of 2 tool call(s). "
        "Do not call more tools; answer with what you have."
    )


async def test_budget_guard_counts_per_run_so_one_instance_serves_concurrent_runs() -> None:
    """Concurrent runs sharing one BudgetGuard each get the full budget: the counts are per run, not per instance."""
    guard = BudgetGuard(max_tool_calls=2)
    box = Toolbox()
    agent = Agent(
        name="a",
        model=ScriptedModel([[ToolCall("read_file", {"path": "a"}), ToolCall("read_file", {"path": "b"})], "done"]),
        tools=box.tools(),
        interceptors=[guard],
    )
    outputs: list[str] = []

    async def one() -> None:
        outputs.append((await agent.run("go")).output)

    async with anyio.create_task_group() as tg:
        for _ in range(5):
            tg.start_soon(one)
    assert outputs == ["done"] * 5
    assert len(box.runs) == 10


async def test_budget_guard_at_run_level_counts_the_whole_agent_tree() -> None:
    """Passed to run(interceptors=...), the tool-call cap covers the subagents' calls too."""
    box = Toolbox()
    sub = Agent(
        name="reader",
        description="Reads.",
        model=ScriptedModel([[ToolCall("read_file", {"path": "1"}), ToolCall("read_file", {"path": "2"})], "read"]),
        tools=box.tools(),
        parallel_tool_calls=False,
    )
    parent = Agent(name="lead", model=ScriptedModel([ToolCall("reader", {"task": "read"}), "done"]), subagents=[sub])
    await parent.run("go", interceptors=[BudgetGuard(max_tool_calls=2)])
    assert box.runs == ["read 1"]  # the delegation itself was the first call


@pytest.mark.parametrize("kwargs", [{}, {"max_model_calls": -1}, {"max_tool_calls": -2}])
def test_budget_guard_rejects_a_useless_or_negative_cap(kwargs: dict[str, int]) -> None:
    """A guard without a cap, or with a negative one, is a configuration error."""
    with pytest.raises(UserError, match="BudgetGuard"):
        BudgetGuard(**kwargs)


# --- RateLimiter ----------------------------------------------------------------------------------


def emailer(limiter: Interceptor, *recipients: str) -> tuple[Agent[Any, Any], Toolbox]:
    """An agent that sends one email per recipient (one call each, in sequence), with `limiter`."""
    box = Toolbox()
    model = ScriptedModel([ToolCall("send_email", {"to": r}) for r in recipients] + ["done"])
    return Agent(name="mailer", model=model, tools=box.tools(), interceptors=[limiter], max_turns=20), box


async def test_rate_limiter_refuses_calls_over_the_limit_per_key() -> None:
    """Each key gets `limit` calls per window; more are refused with a message that never shows the key."""
    limiter = RateLimiter(2, 60.0, key="tenant_id")
    agent, box = emailer(limiter, "a", "b", "c")
    result = await agent.run("go", context=UserContext(tenant_id="tenant-secret-42"))
    assert box.runs == ["email a", "email b"]
    refusal = tool_results(result.messages)[2]
    assert refusal.startswith("Error: Rate limit reached: at most 2 call(s) per 60 seconds. Try again in")
    assert "tenant-secret-42" not in refusal
    other, other_box = emailer(limiter, "d")
    await other.run("go", context=UserContext(tenant_id="globex"))
    assert other_box.runs == ["email d"]


async def test_rate_limiter_state_is_shared_across_runs() -> None:
    """A later run with the same key finds the window already used by earlier runs."""
    limiter = RateLimiter(1, 60.0, key=lambda ctx: ctx.metadata["user"])
    first, first_box = emailer(limiter, "a")
    second, second_box = emailer(limiter, "b")
    await first.run("go", context={"user": "u1"})
    await second.run("go", context={"user": "u1"})
    assert (first_box.runs, second_box.runs) == (["email a"], [])


async def test_rate_limiter_window_slides() -> None:
    """Once the period has passed since the oldest call, calls are allowed again."""
    limiter = RateLimiter(1, 0.05, key="tenant_id")
    agent, box = emailer(limiter, "a", "b")
    await agent.run("go", context=UserContext())
    assert box.runs == ["email a"]
    await anyio.sleep(0.1)
    again, again_box = emailer(limiter, "c")
    await again.run("go", context=UserContext())
    assert again_box.runs == ["email c"]


async def test_rate_limiter_only_counts_the_listed_tools() -> None:
    """With tools=..., other tools are neither limited nor counted."""
    box = Toolbox()
    calls = [ToolCall("read_file", {"path": str(i)}) for i in range(3)] + [ToolCall("send_email", {"to": "x"})]
    agent = Agent(
        name="a",
        model=ScriptedModel([*calls, "done"]),
        tools=box.tools(),
        interceptors=[RateLimiter(1, 60.0, key="tenant_id", tools=["send_email"])],
    )
    await agent.run("go", context=UserContext())
    assert box.runs == ["read 0", "read 1", "read 2", "email x"]


async def test_rate_limiter_never_lets_concurrent_runs_exceed_the_limit() -> None:
    """Many concurrent runs for one key get exactly `limit` calls through in total."""
    limiter = RateLimiter(3, 60.0, key="tenant_id")
    boxes: list[Toolbox] = []

    async def one(i: int) -> None:
        agent, box = emailer(limiter, f"r{i}")
        boxes.append(box)
        await agent.run("go", context=UserContext())

    async with anyio.create_task_group() as tg:
        for i in range(12):
            tg.start_soon(one, i)
    assert sum(len(b.runs) for b in boxes) == 3


async def test_rate_limiter_with_a_missing_key_attribute_fails_clearly() -> None:
    """A key attribute the context does not have raises a UserError naming it."""
    agent, _ = emailer(RateLimiter(1, 1.0, key="org_id"), "a")
    with pytest.raises(UserError, match="no attribute 'org_id' on UserContext"):
        await agent.run("go", context=UserContext())


@pytest.mark.parametrize(("limit", "period", "key"), [(0, 1.0, "k"), (1, 0.0, "k"), (1, 1.0, 3)])
def test_rate_limiter_rejects_invalid_settings(limit: int, period: float, key: Any) -> None:
    """A zero limit, a non-positive period or a key that is neither a name nor a callable is refused."""
    with pytest.raises(UserError, match="RateLimiter"):
        RateLimiter(limit, period, key=key)


# --- Auditor ---------------------------------------------------------------------------------------


@dataclass
class AuditedContext(ExecutionContext):
    """A context with values that must never reach an audit record."""

    customer_email: str = "jane@example.com"
    api_key: str = "sk-live-123"


async def test_auditor_records_every_phase_with_lineage_and_depth() -> None:
    """Run-level, it records each phase of the tree with agent, tool, depth and the task lineage ids."""
    records: list[AuditRecord] = []
    box = Toolbox()
    sub = Agent(
        name="reader",
        description="Reads.",
        model=ScriptedModel([ToolCall("read_file", {"path": "x"}), "read it"]),
        tools=box.tools(),
    )
    parent = Agent(name="lead", model=ScriptedModel([ToolCall("reader", {"task": "read x"}), "done"]), subagents=[sub])
    result = await parent.run("go", context=AuditedContext(), interceptors=[Auditor(records)])
    summary = [(r.phase, r.agent, r.tool_name, r.depth) for r in records]
    assert summary == [
        (Phase.PRE_RUN, "lead", None, 0),
        (Phase.PRE_THINK, "lead", None, 0),
        (Phase.POST_THINK, "lead", None, 0),
        (Phase.PRE_ACT, "lead", "reader", 0),
        (Phase.PRE_RUN, "reader", None, 1),
        (Phase.PRE_THINK, "reader", None, 1),
        (Phase.POST_THINK, "reader", None, 1),
        (Phase.PRE_ACT, "reader", "read_file", 1),
        (Phase.POST_ACT, "reader", "read_file", 1),
        (Phase.PRE_THINK, "reader", None, 1),
        (Phase.POST_THINK, "reader", None, 1),
        (Phase.POST_RUN, "reader", None, 1),
        (Phase.POST_ACT, "lead", "reader", 0),
        (Phase.PRE_THINK, "lead", None, 0),
        (Phase.POST_THINK, "lead", None, 0),
        (Phase.POST_RUN, "lead", None, 0),
    ]
    assert isinstance(result.context, AuditedContext)
    root = result.context.task_id
    assert {(r.task_id, r.parent_task_id) for r in records if r.agent == "lead"} == {(root, None)}
    [(child, parent_id)] = {(r.task_id, r.parent_task_id) for r in records if r.agent == "reader"}
    assert parent_id == root and child != root
    assert all(r.tool_call_id for r in records if r.tool_name)


async def test_auditor_never_records_context_values() -> None:
    """Records hold only the documented fields, and no context value other than the lineage ids appears in them."""
    records: list[AuditRecord] = []

    @tool
    def fail() -> str:
        """Always fails."""
        raise RuntimeError("customer jane@example.com not found")

    agent = Agent(name="a", model=ScriptedModel([ToolCall("fail", {}), "done"]), tools=[fail])
    await agent.run("go", context=AuditedContext(), interceptors=[Auditor(records)])
    assert {f.name for f in fields(AuditRecord)} == {
        "at",
        "phase",
        "agent",
        "depth",
        "tool_name",
        "tool_call_id",
        "task_id",
        "parent_task_id",
        "error_type",
    }
    text = repr(records)
    assert "jane@example.com" not in text and "sk-live-123" not in text
    assert [r.error_type for r in records if r.phase is Phase.ON_ERROR] == ["RuntimeError"]


async def test_auditor_awaits_an_async_sink() -> None:
    """An async callable sink is awaited for each record."""
    received: list[Phase] = []

    async def sink(record: AuditRecord) -> None:
        await anyio.lowlevel.checkpoint()
        received.append(record.phase)

    agent = Agent(name="a", model=ScriptedModel(["hi"]), interceptors=[Auditor(sink)])
    await agent.run("go")
    assert received == [Phase.PRE_RUN, Phase.PRE_THINK, Phase.POST_THINK, Phase.POST_RUN]


def test_auditor_rejects_a_sink_it_cannot_write_to() -> None:
    """A sink that is neither a list nor callable is a configuration error."""
    with pytest.raises(UserError, match="Auditor"):
        Auditor("audit.log")  # type: ignore[arg-type]
