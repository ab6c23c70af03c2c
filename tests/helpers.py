"""Small helpers shared by the tests: reading the first prompt and the last turn, and an echoing offline model."""

from __future__ import annotations

from typing import Any

from cogent import ToolCall
from cogent.messages import Message, ModelResponse, RetryPrompt, ToolReturn, UserPrompt
from cogent.models import FunctionModel, ModelRequestParameters


def last_results(messages: list[Message]) -> list[ToolReturn | RetryPrompt]:
    """Return the tool returns and retry prompts after the last model response, in order."""
    found: list[ToolReturn | RetryPrompt] = []
    for m in reversed(messages):
        if isinstance(m, ModelResponse):
            break
        if isinstance(m, ToolReturn | RetryPrompt):
            found.insert(0, m)
    return found


def first_prompt(messages: list[Message]) -> str:
    """Return the first user prompt of a request (the task of the execution)."""
    return next(m.content for m in messages if isinstance(m, UserPrompt))


def last_result_texts(messages: list[Message]) -> list[str]:
    """Return the contents of the tool returns and retry prompts after the last model response, in order."""
    return [m.content for m in last_results(messages)]


def last_returns_text(messages: list[Message]) -> str:
    """Return the contents of the tool returns after the last model response, joined by '|'."""
    return "|".join(m.content for m in last_results(messages) if isinstance(m, ToolReturn))


def echo_model(*calls: ToolCall) -> FunctionModel:
    """A model that makes `calls` on its first turn, then answers with the tool results joined by '|'."""

    def respond(messages: list[Message], info: ModelRequestParameters) -> Any:
        if not any(isinstance(m, ModelResponse) for m in messages):
            return list(calls)
        return last_returns_text(messages)

    return FunctionModel(respond)
