"""`ToolGate`: offer and allow only the tools the run context allows."""

from __future__ import annotations

from ..context import RunContext
from ._base import InterceptContext, Interceptor, InterceptResult, context_allows

__all__ = ["ToolGate"]


class ToolGate(Interceptor):
    """Offer the model only the tools the run context allows, and refuse calls to others.

    The context decides per tool name: `ctx.can_use_tool(name)` if the context class
    defines a `can_use_tool` method, else `name in getattr(ctx, attribute)`. It is asked
    again for every model request, so a context whose allow-list changes during a run
    is followed.

    - `PRE_THINK`: disallowed tools are removed from the model request
      (`InterceptResult.modify_tools`), so the model does not see them.
    - `PRE_ACT`: a call to a disallowed tool is refused: the tool does not run and the
      model receives an error result.

    Subagents are offered as tools named after them and are gated the same way.

    Example:
        ```python
        @dataclass
        class TenantContext(RunContext):
            tenant_id: str
            allowed_tools: frozenset[str] = frozenset({"search"})

        agent = Agent(name="assistant", model=model, tools=[search, delete_all], interceptors=[ToolGate()])
        await agent.run("Clean up", context=TenantContext(tenant_id="t1"))  # the model is offered `search` only
        ```

    Args:
        attribute: The context attribute holding the allowed tool names (any container
            of strings), read when the context has no `can_use_tool` method.
    """

    def __init__(self, *, attribute: str = "allowed_tools") -> None:
        self.attribute = attribute

    def __repr__(self) -> str:
        return f"ToolGate(attribute={self.attribute!r})"

    def pre_think(self, context: InterceptContext) -> InterceptResult | None:
        """Remove the disallowed tools from this model request.

        Raises:
            UserError: If the context has neither `can_use_tool` nor the allow-list attribute.
        """
        offered = context.tools or []
        kept = [t for t in offered if self._allows(context.run_context, t.name)]
        return InterceptResult.modify_tools(kept) if len(kept) != len(offered) else None

    def pre_act(self, context: InterceptContext) -> InterceptResult | None:
        """Refuse a call to a disallowed tool.

        Raises:
            UserError: If the context has neither `can_use_tool` nor the allow-list attribute.
        """
        name = context.tool_name or ""
        if self._allows(context.run_context, name):
            return None
        return InterceptResult.stop(
            f"Error: Tool {name!r} is not allowed for the current user; use one of the tools offered."
        )

    def _allows(self, ctx: RunContext, name: str) -> bool:
        return context_allows(
            ctx, name, method="can_use_tool", attribute=self.attribute, owner="ToolGate", what="the allowed tools"
        )
