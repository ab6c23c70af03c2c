"""Approval decisions: the item a decision is made on, and the store a context keeps them in.

The `RunContext` methods (`approve_tool`, `reject_tool`, `is_tool_approved`,
`approval_status`) read and write the store; the run loop shares one store between a
context, its execution copy and its children (`cogent.context.share_approvals`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

__all__ = ["APPROVALS_ATTR", "ApprovalRecord", "ApprovalStatus", "ApprovalStore", "ToolApprovalItem", "decision_key"]


@dataclass(kw_only=True, frozen=True, slots=True)
class ToolApprovalItem:
    """A tool call that needs a human (or a handler) to approve or reject it."""

    tool_name: str
    """The tool the model wants to call."""
    call_id: str
    """The id of the tool call."""
    arguments: str
    """The arguments the call will run with, as JSON text: what the approver approves."""
    agent_name: str
    """The agent whose model made the call."""
    approval_id: str = ""
    """Binds a decision to exactly this call: a digest of the run, the delegation path, the
    call id, the tool and the arguments, set by the run loop. A decision recorded for this
    item never covers another call, another run or other arguments."""


ApprovalStatus = Literal["approved", "rejected", "undecided"]
"""What `RunContext.approval_status()` answers."""


@dataclass(kw_only=True, slots=True)
class ApprovalRecord:
    """One tool's decisions, as the OpenAI Agents SDK's `RunContextWrapper` keeps them."""

    approved: bool | list[str] = field(default_factory=list)
    """`True` (always), `False` (never, after an `always_reject`) or the approved call ids."""
    rejected: bool | list[str] = field(default_factory=list)
    """`True` (always) or the rejected call ids."""


@dataclass(kw_only=True, slots=True)
class ApprovalStore:
    """The approval decisions of one context, its execution copies and its children."""

    records: dict[str, ApprovalRecord] = field(default_factory=dict)
    """Per tool: permanent decisions and per-call-id decisions (`is_tool_approved`)."""
    per_item: dict[str, bool] = field(default_factory=dict)
    """Per-call decisions by approval id (what the run loop matches: one call of one run)."""


APPROVALS_ATTR = "_cogent_approvals"
"""The hidden attribute of a context that holds its store (or the context it shares it with)."""


def decision_key(item: ToolApprovalItem) -> str:
    """The key a per-call decision is stored under: the item's approval id (or its fields)."""
    return item.approval_id or f"{item.tool_name}\0{item.call_id}\0{item.arguments}"
