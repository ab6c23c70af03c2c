"""`PermissionGate`: refuse tool calls that the run context lacks the permissions for."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from ..context import RunContext
from ..exceptions import UserError
from ._base import InterceptContext, Interceptor, InterceptResult, context_allows

__all__ = ["PermissionGate"]


class PermissionGate(Interceptor):
    """Refuse calls of tools whose required permissions the run context does not grant.

    Each tool named in `required` needs all of its permissions; tools not named are not
    checked. The context grants permission `p` when `ctx.has_permission(p)` is true if
    the context class defines a `has_permission` method, else when `p` is in
    `getattr(ctx, attribute)`. The check runs at `PRE_ACT`, before any approval is
    asked for: a refused call does not run, the model receives an error result naming
    the missing permissions (never any context value), and the run goes on so the
    model can tell the user. A subagent is a tool named after it, so delegations can
    be gated too.

    Example:
        ```python
        @dataclass
        class UserContext(RunContext):
            permissions: frozenset[str] = frozenset()

        gate = PermissionGate({"delete_user": "admin", "refund": ["billing", "write"]})
        agent = Agent(name="support", model=model, tools=[delete_user, refund], interceptors=[gate])
        result = await agent.run("Delete user 42", context=UserContext(permissions=frozenset({"read"})))
        # delete_user did not run; the model was told the 'admin' permission is missing.
        ```

    Args:
        required: Tool name -> the permission (a string) or the permissions (an
            iterable of strings) a call of that tool needs.
        attribute: The context attribute holding the granted permissions (any
            container of strings), read when the context has no `has_permission` method.

    Raises:
        UserError: If a permission is not a non-empty string, or a tool lists none.
    """

    def __init__(self, required: Mapping[str, str | Iterable[str]], *, attribute: str = "permissions") -> None:
        self.required: dict[str, tuple[str, ...]] = {}
        for tool_name, permissions in required.items():
            needed = (permissions,) if isinstance(permissions, str) else tuple(permissions)
            if not needed or not all(isinstance(p, str) and p for p in needed):
                raise UserError(
                    f"PermissionGate got {permissions!r} for tool {tool_name!r}; give a permission name or a "
                    "non-empty list of permission names."
                )
            self.required[tool_name] = needed
        self.attribute = attribute

    def __repr__(self) -> str:
        return f"PermissionGate({self.required!r}, attribute={self.attribute!r})"

    def pre_act(self, context: InterceptContext) -> InterceptResult | None:
        """Refuse the call when the context lacks one of the tool's permissions.

        Raises:
            UserError: If the context has neither a `has_permission` method nor the
                permissions attribute.
        """
        needed = self.required.get(context.tool_name or "")
        if needed is None:
            return None
        missing = [p for p in needed if not self._grants(context.run_context, p)]
        if not missing:
            return None
        names = ", ".join(repr(p) for p in missing)
        return InterceptResult.stop(
            f"Error: Permission denied: tool {context.tool_name!r} requires the permission(s) {names}, which the "
            "current user does not have. Do not retry it; tell the user it is not allowed."
        )

    def _grants(self, ctx: RunContext, permission: str) -> bool:
        return context_allows(
            ctx,
            permission,
            method="has_permission",
            attribute=self.attribute,
            owner="PermissionGate",
            what="permissions",
        )
