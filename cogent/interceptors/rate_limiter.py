"""`RateLimiter`: at most `limit` tool calls per `period_seconds` per key, across runs."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Hashable, Iterable

import anyio

from ..context import RunContext
from ..exceptions import UserError
from ._base import InterceptContext, Interceptor, InterceptResult

__all__ = ["RateLimiter"]


class RateLimiter(Interceptor):
    """Allow at most `limit` tool calls per `period_seconds` for each key, across runs.

    The key comes from the run context: `key` names a context attribute (e.g.
    `"tenant_id"`) or is a callable that receives the context and returns a hashable
    value. The window slides: a call is allowed when fewer than `limit` calls with the
    same key were allowed in the last `period_seconds`, measured with
    `anyio.current_time()`. With `tools`, only calls of those tools are limited and
    counted.

    The state lives on the instance, so every run using the same instance shares it
    (that is the point); keep one instance per event loop, since each event loop has
    its own clock. Checking and recording a call is one step without an `await`, so
    concurrent runs can never both take the last slot.

    Over the limit, the call is refused rather than delayed (waiting would hold the
    run, its deadline and its resources for an unknown time): the tool does not run,
    the model receives an error result saying when to try again (the key's value is
    never shown to the model), and the run goes on. Refused calls do not count.

    Example:
        ```python
        limiter = RateLimiter(100, 60.0, key="tenant_id", tools=["send_email"])
        agent = Agent(name="assistant", model=model, tools=[send_email], interceptors=[limiter])
        # each tenant may send at most 100 emails per minute, whatever the number of runs
        ```

    Args:
        limit: Calls allowed per window (1 or more).
        period_seconds: The window's length, in seconds (more than 0).
        key: A context attribute name, or a callable `key(ctx) -> Hashable`.
        tools: The tool names to limit; `None` limits every tool call.

    Raises:
        UserError: If `limit` or `period_seconds` is out of range, or `key` is neither
            a string nor a callable.
    """

    def __init__(
        self,
        limit: int,
        period_seconds: float,
        *,
        key: str | Callable[[RunContext], Hashable],
        tools: Iterable[str] | None = None,
    ) -> None:
        if limit < 1:
            raise UserError(f"RateLimiter(limit={limit}) must allow at least 1 call per period.")
        if not period_seconds > 0:
            raise UserError(f"RateLimiter(period_seconds={period_seconds}) must be more than 0 seconds.")
        if not (isinstance(key, str) or callable(key)):
            raise UserError(
                f"RateLimiter(key={key!r}) must be a context attribute name or a callable that receives the context."
            )
        self.limit = limit
        self.period_seconds = float(period_seconds)
        self.key = key
        self.tools = frozenset(tools) if tools is not None else None
        self._calls: dict[Hashable, deque[float]] = {}
        self._next_sweep = 0.0

    def __repr__(self) -> str:
        key = self.key if isinstance(self.key, str) else getattr(self.key, "__qualname__", repr(self.key))
        return f"RateLimiter({self.limit}, {self.period_seconds}, key={key!r}, tools={self.tools!r})"

    def pre_act(self, context: InterceptContext) -> InterceptResult | None:
        """Record the call, or refuse it when its key is over the limit.

        Raises:
            UserError: If `key` names an attribute the context does not have.
        """
        if self.tools is not None and context.tool_name not in self.tools:
            return None
        key = self._key(context.run_context)
        now = anyio.current_time()
        if now >= self._next_sweep:
            self._sweep(now)
        calls = self._calls.get(key)
        if calls is None:
            calls = self._calls[key] = deque()
        start = now - self.period_seconds
        while calls and calls[0] <= start:
            calls.popleft()
        if len(calls) >= self.limit:
            wait = calls[0] + self.period_seconds - now
            return InterceptResult.stop(
                f"Error: Rate limit reached: at most {self.limit} call(s) per {self.period_seconds:g} seconds. "
                f"Try again in {wait:.1f} seconds, or answer without calling {context.tool_name!r}."
            )
        calls.append(now)
        return None

    def _key(self, ctx: RunContext) -> Hashable:
        if not isinstance(self.key, str):
            return self.key(ctx)
        value: Hashable = getattr(ctx, self.key, _MISSING)
        if value is _MISSING:
            raise UserError(
                f"RateLimiter(key={self.key!r}) found no attribute {self.key!r} on {type(ctx).__qualname__}; add "
                "the field to the context class or pass a key callable."
            )
        return value

    def _sweep(self, now: float) -> None:
        """Forget keys without calls in the last period (so idle keys do not accumulate)."""
        start = now - self.period_seconds
        for key in [k for k, calls in self._calls.items() if not calls or calls[-1] <= start]:
            del self._calls[key]
        self._next_sweep = now + self.period_seconds


_MISSING = object()
