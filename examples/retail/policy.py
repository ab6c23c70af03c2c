"""The retail policy (`data/policy.md`) enforced by interceptors, whatever the model does.

- Authentication: "At the beginning of the conversation, you have to authenticate the
  user identity by locating their user id via email, or via name + zip code."
  `record_identification` (POST_ACT) stores the user id that a successful
  identification tool call returns in the shared `Session`; `require_authentication`
  (PRE_ACT) refuses every tool that reads or changes a customer's data
  (`AUTHENTICATED_TOOLS`) until then. Product lookups, `calculate` and the transfer to a
  human agent need no authentication.
- One user per conversation: "You can only help one user per conversation ... and must
  deny any requests for tasks related to any other user." `one_user_per_conversation`
  (PRE_ACT) refuses a call whose `user_id`, or whose `order_id`'s owner, is not the
  authenticated user; a second identification of another user does not replace the
  first. An order id that does not exist is let through, so the tool itself answers
  `Order not found`.
- Explicit confirmation before a write: "Before taking any action that updates the
  database ... obtain explicit user confirmation (yes)". The write tools are made with
  `requires_approval=True` (see `tools.py`), so each call goes to the run's
  `approval_handler`, or interrupts the run when there is none; a rejected call does not
  run and the model is told so.

A refused call does not run; the model receives the refusal, which starts with
`Error: ` like the tools' own failures.
"""

from __future__ import annotations

from cogent.interceptors import InterceptContext, InterceptResult, Phase, interceptor

from .context import RetailContext
from .store import RetailError
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
    user_id = ctx.session.user_id
    args = call.tool_args or {}
    if user_id is None or call.tool_name not in AUTHENTICATED_TOOLS:
        return None
    owner: str | None = args.get("user_id")
    if owner is None and "order_id" in args:
        try:
            owner = ctx.db.orders.get(args["order_id"])["user_id"]
        except RetailError:
            return None  # no such order: the tool reports it
    if owner is not None and owner != user_id:
        return InterceptResult.stop(
            f"Error: This conversation is with user {user_id}; {call.tool_name} concerns another user, and "
            "requests about other users must be denied."
        )
    return None


@interceptor(Phase.POST_ACT)
def record_identification(call: InterceptContext, ctx: RetailContext) -> InterceptResult | None:
    """Authenticate the conversation's user from a successful identification call.

    POST_ACT runs only for calls that succeeded, so `tool_result` is a user id. Once a
    user is authenticated, identifying another user does not switch the session.
    """
    if call.tool_name not in IDENTIFICATION_TOOLS or call.tool_result is None:
        return None
    session = ctx.session
    if session.user_id is None:
        session.user_id = call.tool_result
    elif session.user_id != call.tool_result:
        return InterceptResult.skip(
            f"Error: This conversation is already authenticated as user {session.user_id}; "
            "only one user can be helped per conversation."
        )
    return None


POLICY = (require_authentication, one_user_per_conversation, record_identification)
"""The policy interceptors, in order; every agent of the desk carries them."""
