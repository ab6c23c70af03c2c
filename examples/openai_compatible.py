"""Run a context-injected agent against an OpenAI-compatible server or the Anthropic API.

    # Ollama, vLLM, llama.cpp, LiteLLM, ... (local servers accept any API key)
    python -m examples.openai_compatible --base-url http://localhost:11434/v1 --model llama3.1 --api-key unused
    # OpenAI (reads OPENAI_API_KEY; --stream prints the answer as it arrives)
    python -m examples.openai_compatible --model gpt-4o-mini --stream
    # Anthropic (reads ANTHROPIC_API_KEY)
    python -m examples.openai_compatible --provider anthropic --model claude-sonnet-5

The customer's orders live in the run context: the tool reads them by injection, the
instructions callable puts only the customer's name into the prompt, and nothing
else from the context is ever sent to the server.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field

import anyio

from cogent import Agent, RunContext, tool
from cogent.events import FinalResultEvent, TextDeltaEvent
from cogent.exceptions import AgentRunError, UserError
from cogent.models import Model
from cogent.result import RunResult

PROG = "python -m examples.openai_compatible"


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


def build_model(provider: str, name: str, base_url: str | None, api_key: str | None) -> Model:
    """The model for `--provider` (its SDK reads the API key and base URL from the environment)."""
    if provider == "anthropic":
        from cogent.models.anthropic import AnthropicModel, AnthropicSettings

        return AnthropicModel(name, base_url=base_url, api_key=api_key, settings=AnthropicSettings(temperature=0))
    from cogent.models.openai import OpenAIModel, OpenAISettings

    return OpenAIModel(name, base_url=base_url, api_key=api_key, settings=OpenAISettings(temperature=0))


async def main(argv: Sequence[str] | None = None) -> None:
    """Parse the arguments, run the agent once, print its output and usage.

    Raises:
        AgentRunError: If the run fails (e.g. `ModelAPIError` when the server cannot be reached).
    """
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    parser.add_argument("--provider", choices=["openai", "anthropic"], default="openai", help="API (default: openai)")
    parser.add_argument("--model", required=True, help="model name as the server knows it")
    parser.add_argument("--base-url", help="API base URL, e.g. http://localhost:8000/v1 (default: the SDK's)")
    parser.add_argument("--api-key", help="default: OPENAI_API_KEY or ANTHROPIC_API_KEY")
    parser.add_argument("--stream", action="store_true", help="print the answer as it is generated")
    parser.add_argument("question", nargs="?", default="Has my order A100 shipped yet?")
    args = parser.parse_args(argv)
    try:
        model = build_model(args.provider, args.model, args.base_url, args.api_key)
    except UserError as exc:
        parser.error(str(exc))
    agent = Agent(
        name="order_desk", model=model, instructions=instructions, tools=[order_status], context_type=ShopContext
    )
    context = ShopContext(customer="Ada", orders={"A100": "shipped on Monday", "A101": "pending"})

    result: RunResult[ShopContext, str] | None = None
    async with model:  # closes the model's HTTP client when done
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


def cli(argv: Sequence[str] | None = None) -> int:
    """Run `main`; a failed run prints one line to stderr and gives exit status 1."""
    try:
        anyio.run(main, argv)
    except AgentRunError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(cli())
