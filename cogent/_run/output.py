"""The final answer: text, a structured `final_result` call, or a truncated response."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, cast

from ..exceptions import UnexpectedModelBehavior
from ..messages import ModelResponse, RetryPrompt, ToolCall, ToolReturn
from .outcomes import NEXT_TURN, TurnOutcome
from .results import validation_problem
from .spec import OUTPUT_TOOL_NAME

if TYPE_CHECKING:
    from .execution import Execution

__all__ = ["final_call", "text_answer", "truncated"]

_CUT_OFF = (
    "Your response was cut off at the token limit, so this call was not executed. Make the call again, "
    "with shorter arguments if needed."
)


async def final_call(ex: Execution, calls: list[ToolCall]) -> TurnOutcome:
    """Validate the structured final answer among `calls`; the other calls do not run."""
    spec = ex.spec.output
    assert spec is not None  # the caller checked
    call = next(c for c in calls if c.name == OUTPUT_TOOL_NAME)
    try:
        data = call.arguments if isinstance(call.arguments, dict) else json.loads(call.arguments or "{}")
        value = spec.adapter.validate_python(data["response"] if spec.wrapped else data)
    except Exception as exc:
        ex.note_failure(OUTPUT_TOOL_NAME)
        ex.messages.append(
            RetryPrompt(content=validation_problem(OUTPUT_TOOL_NAME, exc), tool_name=call.name, tool_call_id=call.id)
        )
        skipped = "Tool not executed: the final answer was invalid."
        ex.messages.extend(
            ToolReturn(tool_name=c.name, tool_call_id=cast(str, c.id), content=skipped) for c in calls if c is not call
        )
        return NEXT_TURN
    ex.messages.extend(
        ToolReturn(
            tool_name=c.name,
            tool_call_id=cast(str, c.id),
            content="Final answer received." if c is call else "Tool not executed: a final answer was given.",
        )
        for c in calls
    )
    return await ex.finish(value)


async def text_answer(ex: Execution, response: ModelResponse) -> TurnOutcome:
    """End with the response's text, or ask again when it is empty or text is not accepted."""
    if ex.spec.output is None and response.text:
        return await ex.finish(response.text)
    if ex.spec.output is None:
        problem = "Your response was empty. Answer with text or call a tool."
    else:
        problem = f"Answer by calling the {OUTPUT_TOOL_NAME!r} tool; plain text is not accepted."
    ex.note_failure(OUTPUT_TOOL_NAME)
    ex.messages.append(RetryPrompt(content=problem))
    return NEXT_TURN


async def truncated(ex: Execution, response: ModelResponse) -> TurnOutcome:
    """Handle a response cut off at the model's token limit (`finish_reason == "length"`).

    Its tool calls never run (their arguments may be incomplete): each gets a retry prompt.
    A truncated text answer is an error unless the agent accepts truncated output.

    Raises:
        UnexpectedModelBehavior: For a truncated final answer, unless
            `Agent(allow_truncated_output=True)`.
    """
    if response.tool_calls:
        for c in response.tool_calls:
            ex.note_failure(c.name)
            ex.messages.append(RetryPrompt(content=_CUT_OFF, tool_name=c.name, tool_call_id=c.id))
        return NEXT_TURN
    if ex.agent.allow_truncated_output and ex.spec.output is None and response.text:
        return await ex.finish(response.text)
    raise UnexpectedModelBehavior(
        f"The model of agent {ex.agent.name!r} stopped at its token limit (finish_reason='length'), so its answer is "
        "incomplete; raise the model's max_tokens, or pass Agent(allow_truncated_output=True) to accept "
        "truncated answers (result.finish_reason then says 'length')."
    )
