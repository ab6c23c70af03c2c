"""Model life cycle: no leaked clients or sockets across event loops, agents, or model strings.

Sockets are counted by the local server (connections it accepted and still holds open, with
keep-alive as real servers do); clients are counted among the live objects after a garbage
collection. `anyio.run(...)` followed by `close_loop_resources()` is what `agent.run_sync()`
does with the event loop it creates.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator

import anyio
import openai
import pytest
from chat_server import ChatServer, Reply

from cogent import Agent
from cogent.interceptors import InterceptContext, InterceptResult, Phase, interceptor
from cogent.messages import UserPrompt
from cogent.models import Model, ModelRequestParameters, close_loop_resources, infer_model, register_loop_cleanup
from cogent.models.openai import OpenAIModel

RUNS = 100
PARAMS = ModelRequestParameters(agent_name="lifecycle")


def live(kind: type) -> int:
    """How many objects of `kind` are alive after a full garbage collection."""
    gc.collect()
    return sum(1 for o in gc.get_objects() if isinstance(o, kind))


@pytest.fixture
def kept_alive() -> Iterator[ChatServer]:
    """A local Chat Completions server that keeps connections open between requests."""
    with ChatServer(keep_alive=True) as s:
        s.script = [Reply(text="ok")] * (RUNS * 3)
        yield s


@pytest.fixture
def env_server(kept_alive: ChatServer, monkeypatch: pytest.MonkeyPatch) -> ChatServer:
    """The server, named by the environment as the `openai` SDK reads it."""
    monkeypatch.setenv("OPENAI_API_KEY", "env-key")
    monkeypatch.setenv("OPENAI_BASE_URL", kept_alive.base_url)
    return kept_alive


def test_successive_event_loops_leave_no_clients_or_sockets(kept_alive: ChatServer) -> None:
    """100 runs, each on its own event loop (alternating backends) and closed as run_sync closes it, stay flat."""
    agent = Agent(name="sync", model=kept_alive.model())
    before = live(openai.AsyncOpenAI)

    async def run_once() -> str:
        try:
            return str((await agent.run("Hi")).output)
        finally:
            await close_loop_resources()

    for i in range(RUNS):
        assert anyio.run(run_once, backend="trio" if i % 2 else "asyncio") == "ok"
        assert kept_alive.wait_connections_open(0) == 0
    assert kept_alive.connections_accepted == RUNS  # one connection per loop: a pool cannot outlive its loop
    assert live(openai.AsyncOpenAI) <= before


def test_loops_ended_without_cleanup_do_not_accumulate(kept_alive: ChatServer) -> None:
    """Loops that end without `close_loop_resources()` leave at most one client and socket behind, not one each."""
    agent = Agent(name="sync", model=kept_alive.model())
    before = live(openai.AsyncOpenAI)  # other tests' clients, alive until garbage-collected

    async def run_once() -> str:
        return str((await agent.run("Hi")).output)

    for i in range(RUNS):
        assert anyio.run(run_once, backend="trio" if i % 2 else "asyncio") == "ok"
    assert live(openai.AsyncOpenAI) <= before + 1  # the last loop's: the others were dropped, sockets closed
    assert kept_alive.wait_connections_open(1) <= 1


@pytest.mark.parametrize("anyio_backend", ["asyncio", "trio"])
def test_agents_built_per_request_share_one_client(env_server: ChatServer, anyio_backend: str) -> None:
    """100 agents built per request from a model string on one loop open one client and one connection."""

    async def serve() -> None:
        before = live(openai.AsyncOpenAI)
        for _ in range(RUNS):
            agent = Agent(name="per_request", model="openai:fake-model")
            assert (await agent.run("Hi")).output == "ok"
        assert env_server.connections_accepted == 1
        assert live(openai.AsyncOpenAI) <= before + 1
        await close_loop_resources()
        assert env_server.wait_connections_open(0) == 0

    anyio.run(serve, backend=anyio_backend)


def test_use_model_strings_per_turn_share_one_client(env_server: ChatServer) -> None:
    """An interceptor that switches to `"openai:..."` on every request does not open a client each time."""

    @interceptor(Phase.PRE_THINK)
    def switch(call: InterceptContext) -> InterceptResult:
        return InterceptResult.use_model("openai:fake-model")

    agent = Agent(name="switching", model="test", interceptors=[switch])

    async def serve() -> None:
        for _ in range(RUNS):
            assert (await agent.run("Hi")).output == "ok"
        await close_loop_resources()

    anyio.run(serve)
    assert env_server.connections_accepted == 1
    assert env_server.wait_connections_open(0) == 0


def test_a_model_string_resolves_to_one_model_per_environment(
    env_server: ChatServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same string gives the same model while the environment is unchanged, and a new one when it changes."""
    first = infer_model("openai:fake-model")
    assert infer_model("openai:fake-model") is first
    assert infer_model("openai:other-model") is not first
    monkeypatch.setenv("OPENAI_API_KEY", "rotated-key")
    assert infer_model("openai:fake-model") is not first


@pytest.mark.anyio
async def test_async_with_closes_the_models_connection(kept_alive: ChatServer) -> None:
    """Leaving `async with model:` closes its client's connection; the model still works afterwards."""
    async with kept_alive.model() as model:
        assert (await model.request([UserPrompt(content="Hi")], PARAMS)).text == "ok"
        assert kept_alive.connections_open == 1
    assert kept_alive.wait_connections_open(0) == 0
    assert (await model.request([UserPrompt(content="again")], PARAMS)).text == "ok"
    await model.aclose()
    assert kept_alive.wait_connections_open(0) == 0


@pytest.mark.anyio
async def test_a_passed_client_is_never_closed(kept_alive: ChatServer) -> None:
    """`aclose()` leaves a client the caller passed in open: the caller owns it."""
    async with openai.AsyncOpenAI(api_key="k", base_url=kept_alive.base_url, max_retries=0) as client:
        model = OpenAIModel("fake-model", client=client)
        await model.request([UserPrompt(content="Hi")], PARAMS)
        await model.aclose()
        await close_loop_resources()
        assert not client.is_closed()
        assert (await client.chat.completions.create(model="m", messages=[])).choices
    assert client.is_closed()


@pytest.mark.anyio
async def test_the_base_model_life_cycle_is_a_no_op() -> None:
    """A model without resources supports `aclose()` and `async with`; closing a loop with nothing open is fine."""
    model: Model = infer_model("test")
    async with model as entered:
        assert entered is model
    await model.aclose()
    await close_loop_resources()


@pytest.mark.anyio
async def test_a_failing_cleanup_does_not_stop_the_others(kept_alive: ChatServer) -> None:
    """When one cleanup fails, the later ones (a model's client) still run, and the error is raised after them."""
    ran: list[str] = []

    async def fail() -> None:
        ran.append("fail")
        raise OSError("disk on fire")

    register_loop_cleanup(fail)
    model = kept_alive.model()
    await model.request([UserPrompt(content="Hi")], PARAMS)
    assert kept_alive.connections_open == 1
    with pytest.raises(OSError, match="disk on fire"):
        await close_loop_resources()
    assert ran == ["fail"]
    assert kept_alive.wait_connections_open(0) == 0
    await close_loop_resources()  # everything was taken off the registry: nothing runs twice
    assert ran == ["fail"]


@pytest.mark.anyio
async def test_a_collected_model_is_not_kept_alive_by_the_registry(kept_alive: ChatServer) -> None:
    """Registering a model's cleanup keeps no reference to it: a dropped model is garbage-collected."""
    model = kept_alive.model()
    await model.request([UserPrompt(content="Hi")], PARAMS)
    before = live(OpenAIModel)
    del model
    assert live(OpenAIModel) == before - 1
    await close_loop_resources()
