"""Every code example of the primary spec (the `cogent.context` RunContext page) runs here, section by section.

The spec's code is used as written. Its pseudo-code services (`Database`, `Redis`,
`APIClient`, `Logger`, `User`, `AsyncSession`) are small honest in-memory classes, and
`model=` is an offline model. Where the spec's own code cannot run as written (an
async `run()` called from sync code, an `await` on a sync function), the nearest honest
form is used and a comment says so. Where the spec defines its own `DelegationContext`,
`RetryContext`, `TaskContext`, `TimedContext` and `ExecutionContext`, its code is copied
verbatim into the test, shadowing cogent's built-in helper contexts (tested elsewhere).
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from unittest.mock import Mock

import pytest
from helpers import last_returns_text

import cogent
from cogent import Agent, DeadlineExceeded, FunctionModel, RunContext, TestModel, ToolCall, interceptor, tool
from cogent.core import generate_id, now_utc
from cogent.interceptors import InterceptContext, Interceptor, InterceptResult, Phase
from cogent.messages import Message, ModelResponse, UserPrompt, messages_to_json
from cogent.models import ModelRequestParameters

try:
    from fastapi import Depends, FastAPI, Request
    from fastapi.testclient import TestClient
except ImportError:  # pragma: no cover - fastapi and httpx are in the dev extra
    HAVE_FASTAPI = False
else:
    HAVE_FASTAPI = True


# --- offline model and honest stand-ins for the spec's pseudo-code services ----------------


class Playbook:
    """An offline model for several agents: on an agent's first turn it makes that agent's
    planned tool calls; afterwards it answers with the last turn's tool results joined by '|'.

    It records the task each agent received and the JSON of every request it was sent.
    """

    def __init__(self, **first_turn: list[ToolCall]) -> None:
        self.first_turn = first_turn
        self.tasks: dict[str, list[str]] = {}
        self.requests: dict[str, list[str]] = {}
        self.model = FunctionModel(self.respond)

    def respond(self, messages: list[Message], info: ModelRequestParameters) -> Any:
        self.requests.setdefault(info.agent_name, []).append(messages_to_json(messages))
        if not any(isinstance(m, ModelResponse) for m in messages):
            prompt = next(m for m in reversed(messages) if isinstance(m, UserPrompt))
            self.tasks.setdefault(info.agent_name, []).append(prompt.content)
            return list(self.first_turn.get(info.agent_name, [])) or "nothing to do"
        return last_returns_text(messages)


@dataclass
class User:
    """A user record."""

    id: str
    name: str

    def to_json(self) -> str:
        return json.dumps({"id": self.id, "name": self.name})

    @classmethod
    def from_json(cls, text: str) -> User:
        return cls(**json.loads(text))


class Database:
    """An in-memory database with the synchronous methods the spec's sync tools call."""

    def __init__(self, users: dict[str, str] | None = None, orders: dict[str, list[str]] | None = None) -> None:
        self.users = users or {}
        self.orders = orders or {}
        self.calls: list[str] = []

    def get_user(self, user_id: str) -> User:
        self.calls.append(f"get_user {user_id}")
        return User(id=user_id, name=self.users[user_id])

    def get_orders(self, user_id: str) -> list[str]:
        self.calls.append(f"get_orders {user_id}")
        return self.orders.get(user_id, [])


# --- Overview ----------------------------------------------------------------------------


@pytest.mark.anyio
async def test_overview(capsys: pytest.CaptureFixture[str]) -> None:
    """Overview: a tool annotated with the base class reads the subclass's fields and the original query."""

    @dataclass
    class AppContext(RunContext):
        user_id: str
        db: Database
        api_key: str

    @tool
    def get_user_data(ctx: RunContext) -> str:
        """Get data for the current user."""
        user = ctx.db.get_user(ctx.user_id)
        # Access original query
        print(f"Original query: {ctx.query}")
        return f"User: {user.name}"

    playbook = Playbook(assistant=[ToolCall("get_user_data", {})])
    model = playbook.model
    db, key = Database(users={"123": "Ada"}), "sk-test-key"

    agent = Agent(name="assistant", model=model, tools=[get_user_data])

    result = await agent.run(
        "Get my profile data",
        context=AppContext(user_id="123", db=db, api_key=key),
    )

    assert result.output == "User: Ada"
    assert capsys.readouterr().out == "Original query: Get my profile data\n"
    assert db.calls == ["get_user 123"]
    assert key not in "".join(playbook.requests["assistant"])


# --- Built-in Context Fields ---------------------------------------------------------------


@pytest.mark.anyio
async def test_built_in_context_fields() -> None:
    """Built-in fields: `query` (auto-populated on the first run), `metadata` (a dict) and `agent` (the executor)."""
    fields = {f.name: f for f in dataclasses.fields(RunContext)}
    assert set(fields) == {"query", "metadata", "agent"}
    assert fields["query"].repr is False and fields["agent"].init is False
    empty = RunContext()
    assert (empty.query, empty.metadata, empty.agent) == ("", {}, None)

    seen: list[tuple[str, dict[str, Any], Agent[Any, Any] | None]] = []

    @tool
    def inspect_fields(ctx: RunContext) -> str:
        seen.append((ctx.query, ctx.metadata, ctx.agent))
        return "inspected"

    agent = Agent(
        name="assistant", model=Playbook(assistant=[ToolCall("inspect_fields", {})]).model, tools=[inspect_fields]
    )
    caller = RunContext(metadata={"request_id": "req-1"})
    result = await agent.run("What can you see?", context=caller)
    assert seen == [("What can you see?", {"request_id": "req-1"}, agent)]
    # Auto-populated on the first agent.run(), on the context the run executes with; the caller's object is never
    # written (DESIGN.md: a reused context must never show one run's input to another).
    assert result.context.query == "What can you see?" and caller.query == ""


# --- Query Field -----------------------------------------------------------------------------


@pytest.mark.anyio
async def test_query_field() -> None:
    """Query Field: the delegated subagent still sees the original query while it receives a different task."""
    seen: list[tuple[str, str]] = []

    @tool
    def check_user_permissions(ctx: RunContext) -> str:
        """Check what the user may do."""
        seen.append((ctx.query, ctx.agent.name if ctx.agent else ""))
        return "read-only user"

    playbook = Playbook(
        orchestrator=[ToolCall("permission_checker", {"task": "check user permissions"})],
        permission_checker=[ToolCall("check_user_permissions", {})],
    )
    model = playbook.model
    specialist = Agent(name="permission_checker", model=model, tools=[check_user_permissions])
    orchestrator = Agent(name="orchestrator", model=model, subagents=[specialist])
    ctx = RunContext()

    # Top-level agent
    result = await orchestrator.run("Can I delete files?", context=ctx)
    assert result.context.query == "Can I delete files?"  # the spec's "ctx.query": the run's context

    # Delegated sub-agent (via subagents=): still has ctx.query, but receives a different task
    assert seen == [("Can I delete files?", "permission_checker")]
    assert playbook.tasks == {"orchestrator": ["Can I delete files?"], "permission_checker": ["check user permissions"]}
    assert all("Can I delete files?" not in request for request in playbook.requests["permission_checker"])
    assert result.output == "read-only user"


# --- Creating Custom Contexts ----------------------------------------------------------------


def test_creating_custom_contexts_basic() -> None:
    """Creating Custom Contexts / Basic: required fields, a default factory and a helper method."""

    @dataclass
    class MyContext(RunContext):
        user_id: str
        session_id: str
        permissions: list[str] = field(default_factory=list)

        def has_permission(self, perm: str) -> bool:
            return perm in self.permissions

    ctx = MyContext(user_id="u1", session_id="s1", permissions=["read"])
    assert ctx.has_permission("read") and not ctx.has_permission("write")
    bare = MyContext(user_id="u2", session_id="s2")
    assert bare.permissions == [] and bare.permissions is not MyContext(user_id="u3", session_id="s3").permissions
    assert (bare.query, bare.metadata) == ("", {})
    with pytest.raises(TypeError, match="session_id"):
        MyContext(user_id="u4")  # type: ignore[call-arg]


@pytest.mark.anyio
async def test_creating_custom_contexts_with_services() -> None:
    """Creating Custom Contexts / With Services: async services on the context, with a cache in front of the db."""

    class Database:
        """An async user store."""

        def __init__(self) -> None:
            self.users = {"u1": User(id="u1", name="Grace")}
            self.reads = 0

        async def get_user(self, user_id: str) -> User:
            self.reads += 1
            return self.users[user_id]

    class Redis:
        """An async key-value cache."""

        def __init__(self) -> None:
            self.data: dict[str, str] = {}

        async def get(self, key: str) -> str | None:
            return self.data.get(key)

        async def set(self, key: str, value: str) -> None:
            self.data[key] = value

    class APIClient:
        """An outbound API client (unused by this example, carried as a service)."""

        base_url = "https://api.example.invalid"

    class Logger:
        """Collects log lines."""

        def __init__(self) -> None:
            self.lines: list[str] = []

        def info(self, line: str) -> None:
            self.lines.append(line)

    @dataclass
    class ServiceContext(RunContext):
        db: Database
        cache: Redis
        api_client: APIClient
        logger: Logger

        async def get_user(self, user_id: str) -> User:
            """Get user with caching."""
            cached = await self.cache.get(f"user:{user_id}")
            if cached:
                return User.from_json(cached)
            user = await self.db.get_user(user_id)
            await self.cache.set(f"user:{user_id}", user.to_json())
            return user

    @tool
    async def show_user(user_id: str, ctx: ServiceContext) -> str:
        """Show a user's name."""
        user = await ctx.get_user(user_id)
        ctx.logger.info(f"showed {user_id}")
        return user.name

    ctx = ServiceContext(db=Database(), cache=Redis(), api_client=APIClient(), logger=Logger())
    first_turn = [ToolCall("show_user", {"user_id": "u1"}), ToolCall("show_user", {"user_id": "u1"})]
    agent = Agent(name="svc", model=Playbook(svc=first_turn).model, tools=[show_user], parallel_tool_calls=False)
    result = await agent.run("Who is u1?", context=ctx)
    assert result.output == "Grace|Grace"
    assert ctx.db.reads == 1  # the second call was served from the cache
    assert ctx.cache.data == {"user:u1": User(id="u1", name="Grace").to_json()}
    assert ctx.logger.lines == ["showed u1", "showed u1"]
    assert await ctx.get_user("u1") == User(id="u1", name="Grace") and ctx.db.reads == 1


# --- Using Context in Tools --------------------------------------------------------------


@dataclass
class ShopContext(RunContext):
    """The fields the spec's `get_user_orders` and `admin_action` read."""

    user_id: str
    db: Database
    permissions: list[str] = field(default_factory=list)

    def has_permission(self, perm: str) -> bool:
        return perm in self.permissions


@tool
def get_user_orders(ctx: RunContext) -> str:
    """Get orders for the current user."""
    # Access context properties
    user_id = ctx.user_id
    orders = ctx.db.get_orders(user_id)
    return f"Found {len(orders)} orders"


@tool
def admin_action(action: str, ctx: RunContext) -> str:
    """Perform admin action (requires admin permission)."""
    if not ctx.has_permission("admin"):
        return "Permission denied"
    return f"Performed: {action}"


@pytest.mark.anyio
async def test_using_context_in_tools_accessing_context() -> None:
    """Using Context in Tools / Accessing Context: tools read the user, the db and the permissions."""
    assert list(admin_action.definition.parameters_json_schema["properties"]) == ["action"]
    assert get_user_orders.definition.parameters_json_schema["properties"] == {}
    first_turn = [ToolCall("get_user_orders", {}), ToolCall("admin_action", {"action": "reset cache"})]
    agent = Agent(name="shop", model=Playbook(shop=first_turn).model, tools=[get_user_orders, admin_action])
    db = Database(orders={"alice": ["o1", "o2"], "bob": []})

    admin = await agent.run("Do it", context=ShopContext(user_id="alice", db=db, permissions=["admin"]))
    assert admin.output == "Found 2 orders|Performed: reset cache"
    plain = await agent.run("Do it", context=ShopContext(user_id="bob", db=db))
    assert plain.output == "Found 0 orders|Permission denied"


@tool
def search_with_context(
    query: str,
    limit: int = 10,
    ctx: RunContext = None,  # Context is optional
) -> str:
    """Search with user context."""
    if ctx and ctx.user_id:
        # Personalized search
        return personalized_search(query, ctx.user_id, limit)
    return generic_search(query, limit)


def personalized_search(query: str, user_id: str, limit: int) -> str:
    """The spec's personalized search helper."""
    return f"top {limit} for {user_id}: {query}"


def generic_search(query: str, limit: int) -> str:
    """The spec's generic search helper."""
    return f"top {limit}: {query}"


@pytest.mark.anyio
async def test_using_context_in_tools_context_with_other_parameters() -> None:
    """Context with Other Parameters: `ctx: RunContext = None` is injected in a run and None when called directly."""
    schema = search_with_context.definition.parameters_json_schema
    assert schema["required"] == ["query"]
    assert set(schema["properties"]) == {"query", "limit"}
    assert schema["properties"]["limit"]["default"] == 10

    # Called outside a run: no context.
    assert search_with_context("lamps") == "top 10: lamps"
    assert search_with_context("lamps", 3) == "top 3: lamps"

    agent = Agent(
        name="search",
        model=Playbook(search=[ToolCall("search_with_context", {"query": "lamps", "limit": 2})]).model,
        tools=[search_with_context],
    )
    personal = await agent.run("find lamps", context=ShopContext(user_id="alice", db=Database()))
    assert personal.output == "top 2 for alice: lamps"
    anonymous = await agent.run("find lamps", context=ShopContext(user_id="", db=Database()))
    assert anonymous.output == "top 2: lamps"


# --- Using Context in Interceptors --------------------------------------------------------


class PermissionInterceptor(Interceptor):
    async def intercept(
        self,
        phase: Phase,
        context: InterceptContext,
    ) -> InterceptResult:
        run_ctx = context.run_context

        # Check permissions
        if not run_ctx.has_permission("use_agent"):
            return InterceptResult.stop("Permission denied")

        return InterceptResult.continue_()


@pytest.mark.anyio
async def test_using_context_in_interceptors() -> None:
    """Using Context in Interceptors: without the permission the run stops with "Permission denied", else continues."""
    playbook = Playbook(shop=[ToolCall("get_user_orders", {})])
    agent = Agent(name="shop", model=playbook.model, tools=[get_user_orders], interceptors=[PermissionInterceptor()])
    db = Database(orders={"alice": ["o1"]})

    denied = await agent.run("My orders?", context=ShopContext(user_id="alice", db=db, permissions=["read"]))
    assert denied.output == "Permission denied"
    assert db.calls == [] and "shop" not in playbook.requests  # neither the model nor the tool ran

    allowed = await agent.run("My orders?", context=ShopContext(user_id="alice", db=db, permissions=["use_agent"]))
    assert allowed.output == "Found 1 orders"
    assert db.calls == ["get_orders alice"]


# --- Context Metadata -------------------------------------------------------------------------


def test_context_metadata() -> None:
    """Context Metadata: `get`, `metadata.get`, and `with_metadata` returning a new context."""
    ctx = RunContext(
        metadata={
            "request_id": "req-123",
            "correlation_id": "corr-456",
            "trace_id": "trace-789",
        }
    )

    # Access metadata
    request_id = ctx.get("request_id")
    assert request_id == "req-123"
    request_id = ctx.metadata.get("request_id")
    assert request_id == "req-123"

    # Create new context with additional metadata
    new_ctx = ctx.with_metadata(
        timestamp=datetime.now(),
        version="1.0",
    )

    assert new_ctx is not ctx and type(new_ctx) is RunContext
    assert new_ctx.get("version") == "1.0" and isinstance(new_ctx.get("timestamp"), datetime)
    assert new_ctx.get("trace_id") == "trace-789"
    assert set(ctx.metadata) == {"request_id", "correlation_id", "trace_id"}
    assert ctx.get("missing", "fallback") == "fallback"


# --- Subagent Context Propagation --------------------------------------------------------------


@pytest.mark.anyio
async def test_subagent_context_propagation(capsys: pytest.CaptureFixture[str]) -> None:
    """Subagent Context Propagation: the specialist's tool gets the caller's fields and the original query."""

    @dataclass
    class UserContext(RunContext):
        user_id: str
        permissions: set[str]

    @tool
    def check_permissions(ctx: RunContext) -> str:
        """Check if user has required permissions."""
        print(f"Original query: {ctx.query}")
        if "admin" in ctx.permissions:
            return "Permission granted"
        return "Permission denied"

    model = Playbook(
        orchestrator=[ToolCall("permission_checker", {"task": "Check whether the user is an admin."})],
        permission_checker=[ToolCall("check_permissions", {})],
    ).model

    # Specialist agent receives context automatically
    specialist = Agent(
        name="permission_checker",
        model=model,
        tools=[check_permissions],
    )

    # Orchestrator delegates to specialist via subagents=
    orchestrator = Agent(
        name="orchestrator",
        model=model,
        subagents=[specialist],  # Context flows automatically
    )

    # Context passes through entire delegation chain
    result = await orchestrator.run(
        "Can I delete files?",
        context=UserContext(user_id="123", permissions={"read"}),
    )

    assert result.output == "Permission denied"
    assert capsys.readouterr().out == "Original query: Can I delete files?\n"
    delegation = next(e for e in result.trace if e.kind == "delegation")
    assert (delegation.agent, delegation.depth, delegation.detail) == ("permission_checker", 1, "Permission denied")

    admin = await orchestrator.run("Can I delete files?", context=UserContext(user_id="9", permissions={"admin"}))
    assert admin.output == "Permission granted"


# --- Passing Context to Agents ------------------------------------------------------------------


@pytest.mark.anyio
async def test_passing_context_to_agents() -> None:
    """Passing Context to Agents: the context given at run time is what the tools receive."""

    @dataclass
    class MyContext(RunContext):
        user_id: str
        session_id: str
        permissions: list[str] = field(default_factory=list)

    @tool
    def describe_session(ctx: MyContext) -> str:
        """Describe the session."""
        return f"{ctx.user_id}/{ctx.session_id}/{','.join(ctx.permissions)}"

    agent = Agent(
        name="assistant", model=Playbook(assistant=[ToolCall("describe_session", {})]).model, tools=[describe_session]
    )

    # Pass context at run time
    result = await agent.run(
        "Perform action",
        context=MyContext(
            user_id="user-123",
            session_id="sess-456",
            permissions=["read", "write"],
        ),
    )

    assert result.output == "user-123/sess-456/read,write"


# --- Context Immutability ------------------------------------------------------------------------


@pytest.mark.anyio
async def test_context_immutability() -> None:
    """Context Immutability: a frozen subclass works, and `with_metadata` returns a new instance."""

    @dataclass(frozen=True)  # Enforce immutability
    class ImmutableContext(RunContext):
        user_id: str
        tenant_id: str

    ctx = ImmutableContext(user_id="u1", tenant_id="acme", metadata={"a": 1})
    with pytest.raises(dataclasses.FrozenInstanceError):
        ctx.user_id = "someone else"  # type: ignore[misc]

    # To "modify", create a new instance
    new_ctx = ctx.with_metadata(extra="value")

    assert type(new_ctx) is ImmutableContext and new_ctx is not ctx
    assert new_ctx.metadata == {"a": 1, "extra": "value"} and ctx.metadata == {"a": 1}
    assert (new_ctx.user_id, new_ctx.tenant_id) == ("u1", "acme")

    @tool
    def who(ctx: ImmutableContext) -> str:
        return f"{ctx.user_id}@{ctx.tenant_id} asked {ctx.query!r} extra={ctx.get('extra')}"

    agent = Agent(name="assistant", model=Playbook(assistant=[ToolCall("who", {})]).model, tools=[who])
    result = await agent.run("Who am I?", context=new_ctx)
    assert result.output == "u1@acme asked 'Who am I?' extra=value"
    assert new_ctx.query == ""  # a frozen caller context is never written to; the run used a copy


# --- Request-Scoped Context (FastAPI) ------------------------------------------------------------


class AsyncSession:
    """Stands in for an async database session: one per request, closed afterwards."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.closed = False

    async def fetch_tenant_name(self, tenant_id: str) -> str:
        return {"acme": "Acme Corp", "globex": "Globex"}[tenant_id]


@dataclass
class RequestContext(RunContext):
    user_id: str
    tenant_id: str
    trace_id: str
    db: AsyncSession


@tool
async def whoami(ctx: RequestContext) -> str:
    """Describe the caller of this request."""
    tenant = await ctx.db.fetch_tenant_name(ctx.tenant_id)
    return f"user={ctx.user_id} tenant={tenant} trace={ctx.trace_id} db={ctx.db.name}"


def create_app(get_agent: Callable[[], Agent[Any, Any]]) -> tuple[Any, list[AsyncSession]]:
    """The spec's FastAPI example, plus the `get_db` and middleware it presupposes."""
    sessions: list[AsyncSession] = []

    app = FastAPI()

    @app.middleware("http")
    async def authenticate(request: Request, call_next: Any) -> Any:
        # Authentication middleware puts the caller on request.state, as the spec presupposes.
        request.state.user_id = request.headers["X-User-ID"]
        request.state.tenant_id = request.headers["X-Tenant-ID"]
        return await call_next(request)

    async def get_db() -> AsyncIterator[AsyncSession]:
        session = AsyncSession(f"session-{len(sessions) + 1}")
        sessions.append(session)
        try:
            yield session
        finally:
            session.closed = True

    async def get_context(
        request: Request,
        db: AsyncSession = Depends(get_db),
    ) -> RequestContext:
        return RequestContext(
            user_id=request.state.user_id,
            tenant_id=request.state.tenant_id,
            trace_id=request.headers.get("X-Trace-ID"),
            db=db,
        )

    @app.post("/chat")
    async def chat(
        message: str,
        context: RequestContext = Depends(get_context),
    ) -> dict[str, Any]:
        agent = get_agent()
        result = await agent.run(message, context=context)
        return {"response": result.output}

    return app, sessions


@pytest.mark.skipif(not HAVE_FASTAPI, reason="fastapi and httpx (the dev extra) are not installed")
def test_request_scoped_context() -> None:
    """Request-Scoped Context: a FastAPI endpoint builds a context per request and each run sees its own."""
    playbook = Playbook(assistant=[ToolCall("whoami", {})])
    shared_agent = Agent(name="assistant", model=playbook.model, tools=[whoami])
    app, sessions = create_app(lambda: shared_agent)

    with TestClient(app) as client:
        first = client.post(
            "/chat",
            params={"message": "Who am I?"},
            headers={"X-User-ID": "u-1", "X-Tenant-ID": "acme", "X-Trace-ID": "trace-1"},
        )
        second = client.post(
            "/chat",
            params={"message": "And me?"},
            headers={"X-User-ID": "u-2", "X-Tenant-ID": "globex", "X-Trace-ID": "trace-2"},
        )
    assert first.status_code == 200 and second.status_code == 200
    assert first.json() == {"response": "user=u-1 tenant=Acme Corp trace=trace-1 db=session-1"}
    assert second.json() == {"response": "user=u-2 tenant=Globex trace=trace-2 db=session-2"}
    assert [s.closed for s in sessions] == [True, True]
    assert playbook.tasks["assistant"] == ["Who am I?", "And me?"]


# --- Multi-Tenant Context ----------------------------------------------------------------------


@pytest.mark.anyio
async def test_multi_tenant_context() -> None:
    """Multi-Tenant Context: tenant config reaches tools, and `can_use_tool` gates tools in an interceptor."""

    @dataclass
    class TenantContext(RunContext):
        tenant_id: str
        tenant_config: dict
        allowed_tools: list[str]
        rate_limit: int

        def can_use_tool(self, tool_name: str) -> bool:
            return tool_name in self.allowed_tools

    ran: list[str] = []

    @tool
    def search(terms: str, ctx: TenantContext) -> str:
        """Search the tenant's documents."""
        ran.append("search")
        return f"{ctx.tenant_id}: results within {ctx.tenant_config['max_tokens']} tokens"

    @tool
    def calculate(expression: str) -> str:
        """Evaluate an expression."""
        ran.append("calculate")
        return "42"

    @tool
    def delete_records(ctx: TenantContext) -> str:
        """Delete the tenant's records."""
        ran.append("delete_records")
        return "deleted"

    @interceptor(Phase.PRE_ACT)
    def tenant_gate(call: InterceptContext, ctx: TenantContext) -> InterceptResult | None:
        if not ctx.can_use_tool(call.tool_name or ""):
            return InterceptResult.stop(f"Tool {call.tool_name!r} is not enabled for tenant {ctx.tenant_id}.")
        return None

    # Use in agent (TestModel calls every tool once)
    agent = Agent(
        name="tenant", model=TestModel(), tools=[search, calculate, delete_records], interceptors=[tenant_gate]
    )
    result = await agent.run(
        "Query",
        context=TenantContext(
            tenant_id="acme-corp",
            tenant_config={"max_tokens": 4000},
            allowed_tools=["search", "calculate"],
            rate_limit=100,
        ),
    )

    assert sorted(ran) == ["calculate", "search"]
    assert json.loads(result.output) == {
        "search": "acme-corp: results within 4000 tokens",
        "calculate": "42",
        "delete_records": "Tool 'delete_records' is not enabled for tenant acme-corp.",
    }


# --- Testing with Context ------------------------------------------------------------------------


@dataclass
class MyContext(RunContext):
    """The context of the spec's testing example (`user_id`, `db`, `cache`)."""

    user_id: str
    db: Any
    cache: Any


@pytest.fixture
def test_context() -> MyContext:
    # A bare Mock() has no len(); the spec's tool calls len(orders), so the db mock returns a list.
    return MyContext(
        user_id="test-user",
        db=Mock(**{"get_orders.return_value": ["order-1", "order-2"]}),
        cache=Mock(),
    )


@pytest.mark.anyio
async def test_testing_with_context(test_context: MyContext) -> None:
    """Testing with Context: the tool's `__wrapped__` is the plain function, called with a hand-made context."""
    # The spec writes `await get_user_orders.__wrapped__(ctx=test_context)`, but its get_user_orders
    # is a sync function: awaiting its str result would fail. The sync function is called directly...
    result = get_user_orders.__wrapped__(ctx=test_context)
    assert "orders" in result
    assert result == "Found 2 orders"
    test_context.db.get_orders.assert_called_once_with("test-user")

    # ...and for an async tool the spec's `await` form works as written.
    @tool
    async def get_user_orders_async(ctx: RunContext) -> str:
        """Get orders for the current user."""
        return f"Found {len(ctx.db.get_orders(ctx.user_id))} orders"

    result = await get_user_orders_async.__wrapped__(ctx=test_context)
    assert "orders" in result


# --- Common Patterns: Tracking Delegation Depth ---------------------------------------------------


@pytest.mark.anyio
async def test_common_patterns_tracking_delegation_depth() -> None:
    """Tracking Delegation Depth: the spec's sync `delegate_task` builds a deeper context and runs the specialist."""

    @dataclass
    class DelegationContext(RunContext):
        depth: int = 0
        max_depth: int = 3

    @tool
    def process_task(ctx: DelegationContext) -> str:
        """Process a task with depth awareness."""
        if ctx.depth >= ctx.max_depth:
            return "Maximum delegation depth reached - handling directly"

        # Different strategy based on depth
        if ctx.depth == 0:
            return "Top-level processing"
        else:
            return f"Sub-task processing at depth {ctx.depth}"

    playbook = Playbook(
        orchestrator=[ToolCall("process_task", {}), ToolCall("delegate_task", {"task": "Handle the sub-task."})],
        specialist=[ToolCall("process_task", {})],
    )
    model = playbook.model

    # When delegating, increment depth
    specialist = Agent(name="specialist", model=model, tools=[process_task])

    # In orchestrator, increment depth when delegating
    @tool
    def delegate_task(task: str, ctx: DelegationContext) -> str:
        """Delegate to specialist with incremented depth."""
        new_ctx = DelegationContext(
            query=ctx.query,
            depth=ctx.depth + 1,
            max_depth=ctx.max_depth,
            metadata=ctx.metadata,
        )
        # The spec writes `specialist.run(task, context=new_ctx).output`, but run() is async and this
        # tool is sync. run_sync() is the honest form: a sync tool runs in a worker thread, and
        # run_sync() there executes the specialist on the caller's event loop.
        return specialist.run_sync(task, context=new_ctx).output

    orchestrator = Agent(name="orchestrator", model=model, tools=[process_task, delegate_task])

    result = await orchestrator.run("Process the whole job.", context=DelegationContext())
    assert result.output == "Top-level processing|Sub-task processing at depth 1"
    assert playbook.tasks["specialist"] == ["Handle the sub-task."]

    at_limit = await orchestrator.run("Process the whole job.", context=DelegationContext(depth=3))
    limit_text = "Maximum delegation depth reached - handling directly"
    assert at_limit.output == f"{limit_text}|{limit_text}"


# --- Common Patterns: Retry Tracking ---------------------------------------------------------------


@pytest.mark.anyio
async def test_common_patterns_retry_tracking(capsys: pytest.CaptureFixture[str]) -> None:
    """Retry Tracking: a new RetryContext with `is_retry=True` makes the tool use the longer timeout."""

    @dataclass
    class RetryContext(RunContext):
        retry_count: int = 0
        max_retries: int = 3
        is_retry: bool = False

    @tool
    def fetch_data(url: str, ctx: RetryContext) -> str:
        """Fetch data with retry awareness."""
        if ctx.is_retry:
            # Use more conservative approach on retry
            timeout = 10 + (ctx.retry_count * 5)  # Increase timeout
            print(f"Retry #{ctx.retry_count} with timeout={timeout}s")
        else:
            timeout = 5

        # Fetch logic...
        return f"Data from {url}"

    model = Playbook(fetcher=[ToolCall("fetch_data", {"url": "https://data.example.invalid/report"})]).model
    agent = Agent(name="fetcher", model=model, tools=[fetch_data])
    task = "Fetch the report."
    ctx = RetryContext()
    first = await agent.run(task, context=ctx)
    assert first.output == "Data from https://data.example.invalid/report"
    assert capsys.readouterr().out == ""

    # The spec's snippet uses the caller's own bookkeeping variables:
    failed, retry_count, max_retries = True, ctx.retry_count, ctx.max_retries

    # On retry, create new context
    if failed and retry_count < max_retries:
        retry_ctx = RetryContext(
            query=ctx.query,
            retry_count=retry_count + 1,
            is_retry=True,
            metadata=ctx.metadata,
        )
        # The spec writes `agent.run(task, context=retry_ctx)` without await; run() is async.
        result = await agent.run(task, context=retry_ctx)

    assert result.output == "Data from https://data.example.invalid/report"
    assert capsys.readouterr().out == "Retry #1 with timeout=15s\n"
    assert result.context.query == task


# --- Common Patterns: Task Lineage Tracking -----------------------------------------------------------


def test_common_patterns_task_lineage_tracking() -> None:
    """Task Lineage Tracking: the spec's `delegate_with_lineage` builds the chain the specialist reports."""

    @dataclass
    class TaskContext(RunContext):
        task_id: str = field(default_factory=generate_id)
        parent_task_id: str | None = None
        task_chain: list[str] = field(default_factory=list)

        @property
        def is_root_task(self) -> bool:
            return self.parent_task_id is None

        @property
        def depth(self) -> int:
            return len(self.task_chain)

    @tool
    def analyze_lineage(ctx: TaskContext) -> str:
        """Show task lineage information."""
        if ctx.is_root_task:
            return f"Root task: {ctx.task_id}"
        else:
            chain = " → ".join(ctx.task_chain + [ctx.task_id])  # noqa: RUF005 - the spec's code
            return f"Task chain ({ctx.depth} deep): {chain}"

    specialist = Agent(
        name="specialist", model=Playbook(specialist=[ToolCall("analyze_lineage", {})]).model, tools=[analyze_lineage]
    )

    # When delegating, build chain
    def delegate_with_lineage(task: str, ctx: TaskContext) -> str:
        child_ctx = TaskContext(
            query=ctx.query,
            task_id=generate_id(),
            parent_task_id=ctx.task_id,
            task_chain=ctx.task_chain + [ctx.task_id],  # noqa: RUF005 - the spec's code
            metadata=ctx.metadata,
        )
        # The spec writes `specialist.run(task, context=child_ctx).output`; run() is async, and this
        # is sync code, so the honest form is run_sync().
        return specialist.run_sync(task, context=child_ctx).output

    root = TaskContext()
    assert specialist.run_sync("Analyze the job.", context=root).output == f"Root task: {root.task_id}"

    one_deep = delegate_with_lineage("Analyze a part.", root)
    match = re.fullmatch(rf"Task chain \(1 deep\): {root.task_id} → ([a-z0-9]{{8}})", one_deep)
    assert match is not None and match.group(1) != root.task_id

    middle = TaskContext(task_id="middle", parent_task_id=root.task_id, task_chain=[root.task_id])
    two_deep = delegate_with_lineage("Analyze a smaller part.", middle)
    assert re.fullmatch(rf"Task chain \(2 deep\): {root.task_id} → middle → [a-z0-9]{{8}}", two_deep)


# --- Common Patterns: Execution Timing ----------------------------------------------------------------


@pytest.mark.anyio
async def test_common_patterns_execution_timing() -> None:
    """Execution Timing: the tool adapts to the deadline; a passed deadline stops the run."""

    @dataclass
    class TimedContext(RunContext):
        started_at: datetime = field(default_factory=now_utc)
        deadline: datetime | None = None

        @property
        def elapsed_seconds(self) -> float:
            return (now_utc() - self.started_at).total_seconds()

        @property
        def is_overdue(self) -> bool:
            if self.deadline is None:
                return False
            return now_utc() > self.deadline

        @property
        def remaining_seconds(self) -> float | None:
            if self.deadline is None:
                return None
            return (self.deadline - now_utc()).total_seconds()

    @tool
    def long_running_task(ctx: TimedContext) -> str:
        """Task that respects deadlines."""
        if ctx.is_overdue:
            return "Task deadline exceeded - aborting"

        remaining = ctx.remaining_seconds
        if remaining and remaining < 5:
            return "Running in fast mode - deadline approaching"

        return f"Normal execution (elapsed: {ctx.elapsed_seconds:.1f}s)"

    agent = Agent(
        name="worker", model=Playbook(worker=[ToolCall("long_running_task", {})]).model, tools=[long_running_task]
    )

    # Create context with deadline
    ctx = TimedContext(deadline=now_utc() + timedelta(seconds=30))
    # The spec writes `agent.run("Perform task", context=ctx)` without await; run() is async.
    result = await agent.run("Perform task", context=ctx)
    assert re.fullmatch(r"Normal execution \(elapsed: \d+\.\ds\)", result.output)

    soon = await agent.run("Perform task", context=TimedContext(deadline=now_utc() + timedelta(seconds=3)))
    assert soon.output == "Running in fast mode - deadline approaching"

    overdue = TimedContext(deadline=now_utc() - timedelta(seconds=1))
    assert long_running_task.__wrapped__(overdue) == "Task deadline exceeded - aborting"
    # The spec's hand-written class is plain data: its tool checks the deadline, as the spec shows.
    assert (await agent.run("Perform task", context=overdue)).output == "Task deadline exceeded - aborting"
    # The one-line change (inherit cogent's TimedContext) makes the framework enforce it: the run stops first.
    with pytest.raises(DeadlineExceeded):
        await agent.run("Perform task", context=cogent.TimedContext(deadline=now_utc() - timedelta(seconds=1)))


# --- Common Patterns: Combining Patterns ------------------------------------------------------------------


@pytest.mark.anyio
async def test_common_patterns_combining_patterns() -> None:
    """Combining Patterns: the framework calls the spec's own `create_child_context` when it delegates."""

    @dataclass
    class ExecutionContext(RunContext):
        """Rich execution context combining common patterns."""

        # Task identity
        task_id: str = field(default_factory=generate_id)
        parent_task_id: str | None = None

        # Delegation tracking
        depth: int = 0
        max_depth: int = 5

        # Retry tracking
        retry_count: int = 0
        is_retry: bool = False

        # Timing
        started_at: datetime = field(default_factory=now_utc)
        deadline: datetime | None = None

        # Helper methods
        @property
        def can_delegate(self) -> bool:
            return self.depth < self.max_depth

        @property
        def elapsed_seconds(self) -> float:
            return (now_utc() - self.started_at).total_seconds()

        def create_child_context(self) -> "ExecutionContext":  # noqa: UP037 - the spec's code, verbatim
            """Create context for delegated task."""
            return ExecutionContext(
                query=self.query,
                task_id=generate_id(),
                parent_task_id=self.task_id,
                depth=self.depth + 1,
                max_depth=self.max_depth,
                metadata=self.metadata,
                started_at=now_utc(),
                deadline=self.deadline,  # Propagate deadline
            )

    @tool
    def smart_task(ctx: ExecutionContext) -> str:
        """Task that uses comprehensive context."""
        if not ctx.can_delegate:
            return "Max delegation depth reached"

        if ctx.is_retry:
            return f"Retry attempt #{ctx.retry_count}"

        return f"Task {ctx.task_id} at depth {ctx.depth} (elapsed: {ctx.elapsed_seconds:.1f}s)"

    playbook = Playbook(
        orchestrator=[ToolCall("smart_task", {}), ToolCall("specialist", {"task": "Do the sub-task."})],
        specialist=[ToolCall("smart_task", {})],
    )
    specialist = Agent(name="specialist", model=playbook.model, tools=[smart_task])
    orchestrator = Agent(name="orchestrator", model=playbook.model, tools=[smart_task], subagents=[specialist])

    deadline = now_utc() + timedelta(minutes=5)
    result = await orchestrator.run("Do the job.", context=ExecutionContext(deadline=deadline))
    root = result.context
    top, sub = result.output.split("|")
    assert re.fullmatch(rf"Task {root.task_id} at depth 0 \(elapsed: \d+\.\ds\)", top)
    match = re.fullmatch(r"Task ([a-z0-9]{8}) at depth 1 \(elapsed: \d+\.\ds\)", sub)  # the override's depth + 1
    assert match is not None and match.group(1) != root.task_id

    # The hand-written class is plain data to the framework: its own tool checks `can_delegate`, as the spec shows.
    at_limit = await orchestrator.run("Do the job.", context=ExecutionContext(depth=5))
    assert at_limit.output == "Max delegation depth reached|Max delegation depth reached"

    # The one-line change (inherit cogent's ExecutionContext) makes the framework refuse the delegation itself.
    @tool(name="smart_task")
    def tracked_task(ctx: cogent.ExecutionContext) -> str:
        return smart_task.__wrapped__(ctx)  # type: ignore[arg-type]

    tracked_specialist = Agent(name="specialist", model=playbook.model, tools=[tracked_task])
    tracked = Agent(name="orchestrator", model=playbook.model, tools=[tracked_task], subagents=[tracked_specialist])
    refused = await tracked.run("Do the job.", context=cogent.ExecutionContext(depth=5))
    top, sub = refused.output.split("|")
    assert sub.startswith("Error: Delegation to 'specialist' was refused")
    assert playbook.tasks["specialist"] == ["Do the sub-task."] * 2  # the refused delegation never ran the specialist

    assert smart_task.__wrapped__(ExecutionContext(is_retry=True, retry_count=2)) == "Retry attempt #2"
