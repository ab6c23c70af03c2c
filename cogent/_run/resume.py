"""Resuming a `RunState`: check that it fits the agent, and claim it (at most one resume)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..exceptions import RunStateError
from ..messages import ModelResponse
from ..result import RunState, current_state_ledger
from ..tools import AgentTool
from .spec import spec_of

if TYPE_CHECKING:
    from ..agent import Agent

__all__ = ["check_state", "claim"]


def check_state(agent: Agent[Any, Any], state: Any) -> RunState:
    """Return `state` after checking that it can resume `agent` (and its subagents).

    Raises:
        RunStateError: If it is not a `RunState`, belongs to another agent, or is malformed:
            no pending response, results or pending items for calls the response does not
            make, or a nested state for a call that is not a delegation to that subagent.
    """
    if not isinstance(state, RunState):
        raise RunStateError(f"Expected a RunState to resume, got {type(state).__qualname__}.")
    if state.agent_name != agent.name:
        raise RunStateError(
            f"This RunState belongs to agent {state.agent_name!r}, not {agent.name!r}; resume it with the agent "
            f"named {state.agent_name!r}."
        )
    last = state.messages[-1] if state.messages else None
    if not isinstance(last, ModelResponse) or not last.tool_calls:
        raise RunStateError(
            f"The RunState of agent {agent.name!r} does not end with a model response whose tool calls wait; "
            "it is truncated or was not produced by an interrupted run."
        )
    if not 0 <= state.new_message_index <= len(state.messages):
        raise RunStateError(f"The RunState of agent {agent.name!r} has an invalid new_message_index.")
    calls = {c.id: c for c in last.tool_calls}
    if None in calls or len(calls) != len(last.tool_calls):
        raise RunStateError(f"The RunState of agent {agent.name!r} has tool calls without unique ids.")
    waiting = [item.call_id for item in state.pending]
    keys = [*state.completed, *waiting, *state.children]
    if len(set(keys)) != len(keys) or not set(keys) <= calls.keys():
        raise RunStateError(
            f"The RunState of agent {agent.name!r} has results, pending items or nested states for calls its last "
            "response does not make (or more than one for a call)."
        )
    if not state.pending and not state.children:
        raise RunStateError(f"The RunState of agent {agent.name!r} has nothing waiting for a decision.")
    tools = spec_of(agent).tools
    for item in state.pending:
        if calls[item.call_id].name != item.tool_name or item.tool_name not in tools:
            raise RunStateError(
                f"The RunState's pending item for call {item.call_id!r} names tool {item.tool_name!r}, which the "
                f"call or agent {agent.name!r} does not have."
            )
    for call_id, child in state.children.items():
        tool = tools.get(calls[call_id].name)
        if not isinstance(tool, AgentTool):
            raise RunStateError(
                f"The RunState has a nested state for call {call_id!r}, which is not a delegation of agent "
                f"{agent.name!r}; the state was altered."
            )
        if not isinstance(child, RunState) or child.run_id != state.run_id:
            raise RunStateError(f"The RunState's nested state for call {call_id!r} belongs to another run.")
        check_state(tool.agent, child)
    return state


async def claim(state: RunState) -> None:
    """Claim the state in the installed `StateLedger`.

    Raises:
        RunStateError: If it was resumed before.
    """
    if not await current_state_ledger().claim(state.state_id):
        raise RunStateError(
            f"This RunState (state_id {state.state_id!r}) was already resumed; a state resumes at most once. "
            "Resume the state that run returned instead."
        )
