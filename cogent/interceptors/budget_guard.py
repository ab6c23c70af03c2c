"""`BudgetGuard`: cap the model requests and tool calls of one run."""

from __future__ import annotations

from dataclasses import dataclass

from ..exceptions import UserError
from ._base import InterceptContext, Interceptor, InterceptResult

__all__ = ["BudgetGuard"]


@dataclass(kw_only=True, slots=True)
class _Spent:
    """What one run has spent against one `BudgetGuard`."""

    model_calls: int = 0
    """Model requests let through so far."""
    tool_calls: int = 0
    """Tool calls let through so far."""


class BudgetGuard(Interceptor):
    """Cap the number of model requests and tool calls per run, ending gracefully.

    The counts live in the run's interceptor state (`InterceptContext.state`), never on
    the interceptor, so one instance serves any number of concurrent runs. A "run" is
    one top-level `agent.run()` with all its subagents: passed to `run(interceptors=...)`
    the guard counts the whole agent tree; on an `Agent(interceptors=...)` it counts
    that agent's requests and calls in the run. Resuming an interrupted run starts a
    new count. A request or call is counted when the guard lets it through.

    When a cap is reached:

    - model requests (`PRE_THINK`): the request is not made and the agent's execution
      ends with a message saying so as its output (`InterceptResult.stop`), a `str`
      whatever the agent's `output_type`; in a subagent, that message is the result
      its parent's model receives;
    - tool calls (`PRE_ACT`): the tool does not run, the model receives an error
      result telling it to answer with what it has, and the run goes on.

    For a hard failure instead (an exception out of `run()`), use
    `run(usage_limits=UsageLimits(request_limit=..., tool_calls_limit=...))`.

    Example:
        ```python
        guard = BudgetGuard(max_model_calls=5, max_tool_calls=10)
        result = await agent.run("Research this", interceptors=[guard])
        ```

    Args:
        max_model_calls: Model requests allowed per run, or `None` for no cap.
        max_tool_calls: Tool calls (including delegations) allowed per run, or `None`.

    Raises:
        UserError: If both caps are `None` or a cap is negative.
    """

    def __init__(self, max_model_calls: int | None = None, max_tool_calls: int | None = None) -> None:
        if max_model_calls is None and max_tool_calls is None:
            raise UserError("BudgetGuard() without a cap does nothing; pass max_model_calls= and/or max_tool_calls=.")
        for name, cap in (("max_model_calls", max_model_calls), ("max_tool_calls", max_tool_calls)):
            if cap is not None and cap < 0:
                raise UserError(f"BudgetGuard({name}={cap}) must be 0 or more (or None for no cap).")
        self.max_model_calls = max_model_calls
        self.max_tool_calls = max_tool_calls
        self._key = f"cogent.BudgetGuard.{id(self):x}"

    def __repr__(self) -> str:
        return f"BudgetGuard(max_model_calls={self.max_model_calls}, max_tool_calls={self.max_tool_calls})"

    def _spent(self, context: InterceptContext) -> _Spent:
        spent = context.state.get(self._key)
        if spent is None:
            spent = context.state[self._key] = _Spent()
        assert isinstance(spent, _Spent)
        return spent

    def pre_think(self, context: InterceptContext) -> InterceptResult | None:
        """Let the model request through, or end the execution when the cap is reached."""
        if self.max_model_calls is None:
            return None
        spent = self._spent(context)
        if spent.model_calls >= self.max_model_calls:
            return InterceptResult.stop(
                f"The run was stopped: it reached its budget of {self.max_model_calls} model request(s) "
                f"before agent {context.agent.name!r} produced an answer."
            )
        spent.model_calls += 1
        return None

    def pre_act(self, context: InterceptContext) -> InterceptResult | None:
        """Let the tool call through, or refuse it when the cap is reached."""
        if self.max_tool_calls is None:
            return None
        spent = self._spent(context)
        if spent.tool_calls >= self.max_tool_calls:
            return InterceptResult.stop(
                f"Error: Tool call refused: this run reached its budget of {self.max_tool_calls} tool call(s). "
                "Do not call more tools; answer with what you have."
            )
        spent.tool_calls += 1
        return None
