"""The retail policy (`data/policy.md`) enforced by interceptors, whatever the model does.

- "Authenticate the user identity by locating their user id via email, or via name + zip
  code": `record_identification` (POST_ACT) stores the user id that a successful
  identification returns in the session, and `require_authentication` (PRE_ACT) refuses
  user and order lookups and every write until then.
- "You can only help one user per conversation": `one_user_per_conversation` (PRE_ACT)
  refuses a call whose `user_id`, or whose order's owner, is another user. An unknown
  order id is let through, so the tool answers `Order not found`.
- "Obtain explicit user confirmation (yes)" before a write: the write tools are
  `requires_approval=True` (see `tools.py`), so each call goes to the run's approval
  handler, or interrupts the run.

A refused call does not run; the model receives the refusal, which starts with `Error: `.
"""

from __future__ import annotations

import sqlalchemy as sa

from cogent.interceptors import InterceptContext, InterceptResult, Phase, interceptor

from .context import RetailContext
from .store import orders
from .tools import IDENTIFICATION_TOOLS, WRITE_TOOLS

__all__ = [
    "AUTHENTICATED_TOOLS",
    "POLICY",
    "one_user_per_conversation",
    "record_identification",
    "require_authentication",
]

AUTHENTICATED_TOOLS: frozenset[str] = WRITE_TOOLS | {"get_user_details", "get_order_details"}
"""The tools that need an authenticated customer: user data lookups and every write."""


@interceptor(Phase.PRE_ACT)
def require_authentication(call: InterceptContext, ctx: RetailContext) -> InterceptResult | None:
    """Refuse user-data lookups and writes until the customer is authenticated."""
    if call.tool_name in AUTHENTICATED_TOOLS and ctx.session.user_id is None:
        return InterceptResult.stop(
            f"Error: {call.tool_name} needs an authenticated user. Authenticate the user first with "
            "find_user_id_by_email, or find_user_id_by_name_zip if they do not remember their email."
        )
    return None


@interceptor(Phase.PRE_ACT)
def one_user_per_conversation(call: InterceptContext, ctx: RetailContext) -> InterceptResult | None:
    """Refuse any call about a user, or an order of a user, other than the authenticated one."""
    user_id, args = ctx.session.user_id, call.tool_args or {}
    if user_id is None or call.tool_name not in AUTHENTICATED_TOOLS:
        return None
    owner: str | None = args.get("user_id")
    if owner is None and "order_id" in args:
        with ctx.db.connect() as conn:  # None for an unknown order: the tool reports it
            owner = conn.scalar(sa.select(orders.c.user_id).where(orders.c.order_id == args["order_id"]))
    if owner is not None and owner != user_id:
        return InterceptResult.stop(
            f"Error: This conversation is with user {user_id}; {call.tool_name} concerns another user, and "
            "requests about other users must be denied."
        )
    return None


@interceptor(Phase.POST_ACT)
def record_identification(call: InterceptContext, ctx: RetailContext) -> InterceptResult | None:
    """Authenticate the conversation's user from a successful identification call (POST_ACT: it succeeded).

    Once a user is authenticated, identifying another one does not switch the session.
    """
    if call.tool_name not in IDENTIFICATION_TOOLS or call.tool_result is None:
        return None
    if ctx.session.user_id is None:
        ctx.session.user_id = call.tool_result
    elif ctx.session.user_id != call.tool_result:
        return InterceptResult.skip(
            f"Error: This conversation is already authenticated as user {ctx.session.user_id}; "
            "only one user can be helped per conversation."
        )
    return None


POLICY = (require_authentication, one_user_per_conversation, record_identification)
"""The policy interceptors, in order; every agent of the desk carries them."""
