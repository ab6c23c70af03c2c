"""`@tool` keeps the decorated function's signature for direct calls."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import assert_type

from cogent import RunContext, Tool, tool


@dataclass
class AppContext(RunContext):
    user_id: str


@tool
def add(a: int, b: int = 1) -> int:
    """Add two numbers."""
    return a + b


@tool(name="greet", requires_approval=False, timeout=5.0)
def greet(ctx: AppContext, greeting: str) -> str:
    """Greet the current user."""
    return f"{greeting}, {ctx.user_id}"


@tool
async def lookup(order_id: int, ctx: AppContext | None = None) -> dict[str, int]:
    """Look up an order."""
    return {"order_id": order_id}


is_tool: Tool[[int, int], int] = add
assert_type(add(1, 2), int)
assert_type(add(1), int)
assert_type(add(a=1, b=2), int)
assert_type(greet(AppContext(user_id="u"), "hi"), str)
original: Callable[[AppContext, str], str] = greet.__wrapped__
not_original: Callable[[int], str] = greet.__wrapped__  # type: ignore[assignment]


async def direct_async_call() -> None:
    assert_type(await lookup(1), dict[str, int])
    assert_type(await lookup(1, AppContext(user_id="u")), dict[str, int])


# Wrong argument types and arities are errors, exactly as for the undecorated function.
add("1", 2)  # type: ignore[arg-type]
add(1, b="2")  # type: ignore[arg-type]
add(1, 2, 3)  # type: ignore[call-arg]
add(c=1)  # type: ignore[call-arg]
greet(RunContext(), "hi")  # type: ignore[arg-type]
greet(AppContext(user_id="u"), 42)  # type: ignore[arg-type]
lookup("not an int")  # type: ignore[arg-type, unused-coroutine]
_: str = add(1, 2)  # type: ignore[assignment]
