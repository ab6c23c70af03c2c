"""Approvals: bind each pending call to one run, one call and its arguments; ask once.

Rules (DESIGN.md "Approvals"): a per-call decision covers exactly the item it was made for,
whose `approval_id` digests the run id, the delegation path, the call id, the tool and the
arguments the approver saw; permanent decisions apply within the context they were
recorded on (its execution copies and children share it); a handler must answer a `bool`.
"""

from __future__ import annotations

import hashlib
import inspect
import json
from collections.abc import Sequence
from typing import Any, Literal, TypeAlias

from .._json import json_text
from .._signature import InjectedCall
from ..context import RunContext, ToolApprovalItem, consume_decision
from ..exceptions import UserError

__all__ = ["Decision", "approval_id", "arguments_text", "ask", "pending_item"]

Decision: TypeAlias = Literal["approved", "rejected", "pending"]


def arguments_text(arguments: dict[str, Any]) -> str:
    """Return validated arguments as the JSON text an approver sees and the call runs with."""
    return json_text(arguments)


def approval_id(run_id: str, path: Sequence[str], call_id: str, tool_name: str, arguments: str) -> str:
    """Return the digest that binds a decision to exactly one call (32 hex characters).

    The parts are encoded as one JSON array, so no choice of ids (a model may name a call
    "a/b", or put a NUL in it) makes two different calls encode alike.
    """
    encoded = json.dumps([run_id, list(path), call_id, tool_name, arguments], ensure_ascii=True)
    return hashlib.sha256(encoded.encode("ascii")).hexdigest()[:32]


def pending_item(
    *, run_id: str, path: Sequence[str], agent_name: str, tool_name: str, call_id: str, arguments: str
) -> ToolApprovalItem:
    """Return the item a call that needs approval is decided on."""
    return ToolApprovalItem(
        tool_name=tool_name,
        call_id=call_id,
        arguments=arguments,
        agent_name=agent_name,
        approval_id=approval_id(run_id, path, call_id, tool_name, arguments),
    )


async def ask(item: ToolApprovalItem, ctx: RunContext, handler: InjectedCall | None) -> Decision:
    """Return the decision for `item`: recorded on the context, else the handler's, else pending.

    A per-call decision recorded on the context is used once, then forgotten; the handler's
    answer is not recorded: each decides this call only.

    Raises:
        UserError: If the handler answers anything but a `bool` (after awaiting an awaitable).
    """
    status = ctx.approval_status(item)
    if status != "undecided":
        consume_decision(ctx, item)  # a per-call decision covers this one call
        return status
    if handler is None:
        return "pending"
    answer = await handler(ctx, item)
    if inspect.isawaitable(answer):
        answer = await answer
    if type(answer) is not bool:
        raise UserError(
            f"The approval_handler answered {type(answer).__qualname__} for tool {item.tool_name!r}; it must return "
            "True (approve) or False (reject). The call did not run."
        )
    return "approved" if answer else "rejected"
