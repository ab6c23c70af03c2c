"""What a run returns: `RunResult`, and `RunState` to resume an interrupted run.

A `RunState` is data that leaves the process (a web application stores it between two
requests), so it is treated as untrusted when it comes back:

- `to_json()` signs the state with an HMAC-SHA256 (the standard library's `hmac`) under an
  application key, and `from_json()` refuses a state whose signature does not match, so an
  edited state (an added approval, changed arguments, a forged nested state) never loads.
- A state is resumed at most once: resuming claims its `state_id` in a `StateLedger`. The
  default ledger remembers the ids claimed in this process; an application that resumes in
  several processes installs a shared one with `set_state_ledger()`.
- Approval decisions are never part of a state: they are recorded on the context you resume
  with, and each is bound to one call of one run with the arguments the approver saw.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import os
import secrets
import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Generic

from pydantic import TypeAdapter, ValidationError
from typing_extensions import TypeVar

from ._json import json_text, parse_json
from .context import RunContext, ToolApprovalItem
from .events import TraceEvent
from .exceptions import RunStateError, UserError
from .messages import FinishReason, Message, ModelResponse, RetryPrompt, ToolReturn
from .usage import Usage

__all__ = [
    "InMemoryStateLedger",
    "RunResult",
    "RunState",
    "StateLedger",
    "set_state_ledger",
]

ContextT = TypeVar("ContextT", bound=RunContext, default=RunContext)
OutputT = TypeVar("OutputT", default=str)

_FORMAT = "cogent.run_state"
_VERSION = 1
_KEY_ENV = "COGENT_STATE_KEY"
_process_key = secrets.token_bytes(32)


@dataclass(kw_only=True, frozen=True)
class RunState:
    """Where an interrupted run stopped, so it can resume: `agent.run(state, context=...)`.

    It holds the conversation of one agent execution up to the response whose tool calls
    wait, the results of that response's calls that finished, the calls waiting for a
    decision, and the states of interrupted subagents. It pickles, and round-trips through
    signed JSON (`to_json` / `from_json`).
    """

    agent_name: str
    """The agent that was interrupted."""
    task: str
    """That agent's input."""
    messages: list[Message]
    """The history, ending with the response whose tool calls are pending."""
    run_id: str
    """The id of the run, the same across resumes; approvals are bound to it."""
    state_id: str
    """This state's own id; a state is resumed at most once."""
    completed: dict[str, ToolReturn | RetryPrompt] = field(default_factory=dict)
    """Results of that response's calls that already finished, by call id."""
    pending: list[ToolApprovalItem] = field(default_factory=list)
    """This agent's calls waiting for a decision, with the arguments they will run with."""
    children: dict[str, RunState] = field(default_factory=dict)
    """States of interrupted subagents, by the id of the delegating call."""
    usage: Usage = field(default_factory=Usage)
    """The usage of the run up to the interruption (the whole tree; top-level state only)."""
    new_message_index: int = 0
    """Where this run's new messages begin in `messages`."""

    @property
    def interruptions(self) -> list[ToolApprovalItem]:
        """Every call waiting for a decision, in this state and its children."""
        items = list(self.pending)
        for child in self.children.values():
            items.extend(child.interruptions)
        return items

    def to_json(self, *, key: bytes | str | None = None) -> str:
        """Serialize the state to signed JSON text.

        Args:
            key: The application key the state is signed with (keep it secret, e.g. in your
                secrets store). Defaults to the `COGENT_STATE_KEY` environment variable, then
                to a random key of this process (so such a state loads only in this process).

        Returns:
            JSON text that `from_json` accepts with the same key.
        """
        payload = json_text(self, _state_adapter())
        return json.dumps(
            {"format": _FORMAT, "version": _VERSION, "payload": payload, "hmac_sha256": _sign(payload, key)}
        )

    @classmethod
    def from_json(cls, data: str | bytes, *, key: bytes | str | None = None) -> RunState:
        """Load a state written by `to_json`, after checking its signature.

        Args:
            data: The JSON text.
            key: The key it was signed with (see `to_json`).

        Returns:
            The state.

        Raises:
            RunStateError: If `data` is not a signed state, was signed with another key, was
                edited after signing, or does not describe a valid state.
        """
        try:
            envelope = json.loads(data)
        except (ValueError, TypeError) as exc:
            raise RunStateError(
                f"The saved RunState is not JSON ({exc}); pass the text RunState.to_json() wrote."
            ) from None
        if not isinstance(envelope, dict) or envelope.get("format") != _FORMAT:
            raise RunStateError("The JSON is not a saved RunState; pass the text RunState.to_json() wrote.")
        if envelope.get("version") != _VERSION:
            raise RunStateError(
                f"The saved RunState has format version {envelope.get('version')!r}; this cogent reads version "
                f"{_VERSION}. Resume it with the cogent version that saved it."
            )
        payload, mac = envelope.get("payload"), envelope.get("hmac_sha256")
        if (
            not isinstance(payload, str)
            or not isinstance(mac, str)
            or not hmac.compare_digest(mac, _sign(payload, key))
        ):
            raise RunStateError(
                "The saved RunState's signature does not match: it was edited after it was saved, or signed with "
                "another key. Load it with the key it was saved with (key= or COGENT_STATE_KEY); never resume an "
                "edited state."
            )
        try:
            return parse_json(_state_adapter(), payload)
        except ValidationError as exc:
            raise RunStateError(f"The saved RunState is signed but not a valid state: {exc}") from None


def _sign(payload: str, key: bytes | str | None) -> str:
    if key is None:
        env = os.environ.get(_KEY_ENV)
        key = env if env else _process_key
    if isinstance(key, str):
        key = key.encode()
    if not isinstance(key, bytes) or not key:
        raise UserError("A RunState key must be non-empty bytes or str; pass key=... or set COGENT_STATE_KEY.")
    return hmac.new(key, payload.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()


@functools.cache
def _state_adapter() -> TypeAdapter[RunState]:
    """The state's validator, built on first use rather than at import (`import cogent` stays fast)."""
    return TypeAdapter(RunState)


class StateLedger(ABC):
    """Where the ids of resumed states are claimed, so that a state is resumed at most once.

    Install a ledger shared by every process that resumes states (a database table with a
    unique key, a Redis `SET NX`) with `set_state_ledger()`.
    """

    @abstractmethod
    async def claim(self, state_id: str) -> bool:
        """Claim `state_id`; return `True` the first time, `False` if it was claimed before."""


class InMemoryStateLedger(StateLedger):
    """The default ledger: the state ids claimed in this process (about 100 bytes each)."""

    def __init__(self) -> None:
        self._claimed: set[str] = set()
        self._lock = threading.Lock()

    async def claim(self, state_id: str) -> bool:
        """Claim `state_id` in this process."""
        with self._lock:
            if state_id in self._claimed:
                return False
            self._claimed.add(state_id)
            return True


_ledger: list[StateLedger] = [InMemoryStateLedger()]


def set_state_ledger(ledger: StateLedger) -> None:
    """Install the ledger that resumed states are claimed in (for every run in this process).

    Args:
        ledger: The ledger.

    Raises:
        UserError: If `ledger` is not a `StateLedger`.
    """
    if not isinstance(ledger, StateLedger):
        raise UserError(f"set_state_ledger() needs a StateLedger instance, got {type(ledger).__qualname__}.")
    _ledger[0] = ledger


def current_state_ledger() -> StateLedger:
    """Return the installed `StateLedger`."""
    return _ledger[0]


@dataclass(kw_only=True)
class RunResult(Generic[ContextT, OutputT]):
    """The outcome of `Agent.run()`."""

    output: OutputT
    """The final output (a validated `output_type` instance), or `None` if interrupted."""
    messages: list[Message]
    """The full history, usable as the next run's `message_history`."""
    usage: Usage
    """Requests, tokens and tool calls, summed over the whole agent tree."""
    context: ContextT
    """The context the top-level agent executed with (a copy of the one passed in)."""
    trace: list[TraceEvent]
    """What happened, in order; delegations nest their subagent's events."""
    interruptions: list[ToolApprovalItem] = field(default_factory=list)
    """Tool calls waiting for approval; non-empty only when the run was interrupted."""
    state: RunState | None = None
    """The state to resume from when interrupted: `agent.run(result.state, context=...)`."""
    new_message_index: int = 0
    """Where this run's messages begin in `messages`."""

    def new_messages(self) -> list[Message]:
        """Return the messages of this run only (without the `message_history` passed in)."""
        return self.messages[self.new_message_index :]

    @property
    def finish_reason(self) -> FinishReason | None:
        """Why the model stopped in its last response (`"length"`: cut off at the token limit)."""
        for message in reversed(self.messages):
            if isinstance(message, ModelResponse):
                return message.finish_reason
        return None
