"""`Agent` is generic in its context and output types; runs and results follow them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, assert_type

from pydantic import BaseModel

from cogent import Agent, RunContext, RunResult, ScriptedModel, TestModel
from cogent.events import FinalResultEvent, StreamEvent, TextDeltaEvent


@dataclass
class AppContext(RunContext):
    user_id: str


@dataclass
class AdminContext(AppContext):
    level: int = 1


@dataclass
class OtherContext(RunContext):
    tenant_id: str = "t"


class Invoice(BaseModel):
    total: float


model = TestModel()

by_argument = Agent(name="a", model=model, context_type=AppContext)
assert_type(by_argument, Agent[AppContext, str])

by_annotation: Agent[AppContext] = Agent(name="b", model=model)
assert_type(by_annotation, Agent[AppContext, str])

untyped = Agent(name="c", model="test")
assert_type(untyped, Agent[RunContext, str])

structured = Agent(name="d", model=ScriptedModel([]), context_type=AppContext, output_type=Invoice)
assert_type(structured, Agent[AppContext, Invoice])

numbers = Agent(name="e", model=model, output_type=int)
assert_type(numbers, Agent[RunContext, int])


async def runs() -> None:
    result = await by_argument.run("hi", context=AppContext(user_id="u"))
    assert_type(result, RunResult[AppContext, str])
    assert_type(result.context, AppContext)
    assert_type(result.output, str)

    # A subclass of the context type is accepted; the result keeps the agent's type.
    admin = await by_annotation.run("hi", context=AdminContext(user_id="u"))
    assert_type(admin.context, AppContext)

    invoice = await structured.run("bill me", context=AppContext(user_id="u"))
    assert_type(invoice.output, Invoice)
    assert_type(invoice.context, AppContext)
    assert_type((await numbers.run("count")).output, int)

    plain = await untyped.run("hi", context=OtherContext())
    assert_type(plain.context, RunContext)

    # A context of another class is a type error, whichever way the agent was typed.
    await by_argument.run("hi", context=OtherContext())  # type: ignore[arg-type]
    await by_annotation.run("hi", context=RunContext())  # type: ignore[arg-type]
    await structured.run("hi", context=OtherContext())  # type: ignore[arg-type]

    # The output type is not interchangeable either.
    text: str = invoice.output  # type: ignore[assignment]
    del text


def sync_runs() -> None:
    result = by_argument.run_sync("hi", context=AppContext(user_id="u"))
    assert_type(result, RunResult[AppContext, str])
    by_argument.run_sync("hi", context=OtherContext())  # type: ignore[arg-type]


async def streams() -> None:
    async with by_argument.run_stream("hi", context=AppContext(user_id="u")) as events:
        assert_type(events, AsyncIterator[StreamEvent])
        async for event in events:
            if isinstance(event, TextDeltaEvent):
                assert_type(event.text, str)
            elif isinstance(event, FinalResultEvent):
                assert_type(event.result, RunResult[Any, Any])
    async with by_argument.run_stream("hi", context=OtherContext()):  # type: ignore[arg-type]
        pass
