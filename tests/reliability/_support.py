"""Helpers shared by the reliability tests: offline models that record requests, thread checks."""

from __future__ import annotations

import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cogent
from cogent import RunResult
from cogent.messages import Message, ModelResponse, RetryPrompt, ToolCall, ToolReturn
from cogent.models import FunctionModel, ModelRequestParameters

_WATCHED = (str(Path(__file__).parent), str(Path(cogent.__file__).parent))
_POOL_NAMES = ("AnyIO worker thread", "Trio thread")


@dataclass
class Request:
    """One model request as the model received it."""

    messages: list[Message]
    """The messages sent."""
    params: ModelRequestParameters
    """The instructions, tool definitions and output settings sent."""


def calls_then(
    first: ToolCall | list[ToolCall] | ModelResponse, final: str = "done", requests: list[Request] | None = None
) -> FunctionModel:
    """Return a model that answers an execution's first request with `first` and later ones with `final`.

    Args:
        first: The tool call(s) (or response) of the first turn.
        final: The text of every later turn.
        requests: Where to record every request, if given.
    """

    def respond(messages: list[Message], info: ModelRequestParameters) -> Any:
        if requests is not None:
            requests.append(Request(list(messages), info))
        if any(isinstance(m, ModelResponse) for m in messages):
            return final
        return first

    return FunctionModel(respond)


def answers(result: RunResult[Any, Any], call_id: str) -> list[ToolReturn | RetryPrompt]:
    """Return the messages of a run's history that answer the tool call `call_id`."""
    return [m for m in result.messages if isinstance(m, ToolReturn | RetryPrompt) and m.tool_call_id == call_id]


def busy_threads() -> list[str]:
    """Return the names of the other threads whose stack is inside cogent or these tests right now."""
    me = threading.get_ident()
    names = {t.ident: t.name for t in threading.enumerate()}
    busy = []
    for ident, frame in sys._current_frames().items():
        walker = frame if ident != me else None
        while walker is not None:
            if walker.f_code.co_filename.startswith(_WATCHED):
                busy.append(names.get(ident, str(ident)))
                break
            walker = walker.f_back
    return busy


def foreign_threads(before: set[threading.Thread]) -> list[threading.Thread]:
    """Return the threads started since `before` that are not an anyio or trio worker pool thread."""
    return [t for t in threading.enumerate() if t not in before and not t.name.startswith(_POOL_NAMES)]
