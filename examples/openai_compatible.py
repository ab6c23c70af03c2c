"""Run a context-injected agent against any OpenAI-compatible Chat Completions server.

    # Ollama, vLLM, llama.cpp, LiteLLM, ... (local servers accept any API key)
    python -m examples.openai_compatible --base-url http://localhost:11434/v1 --model llama3.1 --api-key unused
    # OpenAI (reads OPENAI_API_KEY; --stream prints the answer as it arrives)
    python -m examples.openai_compatible --model gpt-4o-mini --stream

The customer's orders live in the run context: the tool reads them by injection, the
instructions callable puts only the customer's name into the prompt, and nothing
else from the context is ever sent to the server.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from dataclasses import dataclass, field

import anyio

from cogent import Agent, RunContext, tool
from cogent.events import FinalResultEvent, TextDeltaEvent
from cogent.result import RunResult
from cogent.exceptions import UserError
from cogent.models.openai import OpenAIModel, OpenAISettings


@dataclass
class ShopContext(RunContext):
    """Who is asking, and their orders (a stand-in for a database handle)."""

    customer: str
    orders: dict[str, str] = field(default_factory=dict)


@tool
def order_status(ctx: ShopContext, order_id: str) -> str:
    """Look up the status of one of the current customer's orders.

    Args:
        order_id: The order number, e.g. "A100".
    """
    status = ctx.orders.get(order_id.strip().upper())
    return f"Order {order_id}: {status}." if status else f"The customer has no order {order_id}."


def instructions(ctx: ShopContext) -> str:
    return f"You help {ctx.customer} with their orders. Look orders up with the tool; answer in one sentence."


async def main(argv: Sequence[str] | None = None) -> None:
    """Parse the arguments, run the agent once, print its output and usage."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="model name as the server knows it")
    parser.add_argument("--base-url", help="API base URL, e.g. http://localhost:8000/v1 (default: OPENAI_BASE_URL)")
    parser.add_argument("--api-key", default=os.environ.get("OPENAI_API_KEY"), help="default: OPENAI_API_KEY")
    parser.add_argument("--stream", action="store_true", help="print the answer as it is generated")
    parser.add_argument("question", nargs="?", default="Has my order A100 shipped yet?")
    args = parser.parse_args(argv)
    try:
        model = OpenAIModel(
            args.model, base_url=args.base_url, api_key=args.api_key, settings=OpenAISettings(temperature=0)
        )
    except UserError as exc:
        parser.error(str(exc))
    agent = Agent(
        name="order_desk", model=model, instructions=instructions, tools=[order_status], context_type=ShopContext
    )
    context = ShopContext(customer="Ada", orders={"A100": "shipped on Monday", "A101": "pending"})

    result: RunResult[ShopContext, str] | None = None
    if args.stream:
        async with agent.run_stream(args.question, context=context) as events:
            async for event in events:
                if isinstance(event, TextDeltaEvent):
                    print(event.text, end="", flush=True)
                elif isinstance(event, FinalResultEvent):
                    result = event.result
        print()
    else:
        result = await agent.run(args.question, context=context)
        print(result.output)
    assert result is not None
    usage = result.usage
    print(
        f"usage: {usage.requests} requests, {usage.input_tokens} input + {usage.output_tokens} output tokens, "
        f"{usage.tool_calls} tool calls"
    )


if __name__ == "__main__":
    anyio.run(main)
