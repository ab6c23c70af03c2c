"""Per-request overhead of cogent's providers against the bare SDK call, on a local server.

A small HTTP server on 127.0.0.1 answers Chat Completions and Messages API requests with a
fixed body (keep-alive, so no connection setup is timed). Each measurement sends the same
one-message request many times on one event loop, once through the bare SDK client and once
through `OpenAIModel.request()` / `AnthropicModel.request()` (same SDK underneath), in
alternating batches, and reports the fastest batch's microseconds per request; the difference
is what cogent adds (mapping the history and the response, finding the loop's client).

    python -m benchmarks.providers          # full
    python -m benchmarks.providers --quick  # a few hundred requests
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import anthropic
import anyio
import openai

from cogent.messages import Message, UserPrompt
from cogent.models import ModelRequestParameters
from cogent.models.anthropic import AnthropicModel, AnthropicSettings
from cogent.models.openai import OpenAIModel, OpenAISettings

COMPLETION = json.dumps(
    {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": 0,
        "model": "bench",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6},
    }
).encode()
MESSAGE = json.dumps(
    {
        "id": "msg_bench",
        "type": "message",
        "role": "assistant",
        "model": "bench",
        "content": [{"type": "text", "text": "ok"}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 5, "output_tokens": 1},
    }
).encode()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class names it
        """Quiet."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", 0)))
        body = MESSAGE if self.path.endswith("/messages") else COMPLETION
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@contextmanager
def _server() -> Iterator[str]:
    """A running local server; yields its root URL."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        host, port = httpd.server_address[:2]
        yield f"http://{host!s}:{port}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


async def _pair_us(
    bare: Callable[[], Awaitable[object]], ours: Callable[[], Awaitable[object]], requests: int, rounds: int
) -> tuple[float, float]:
    """Microseconds per request of `bare` and `ours`: batches alternate, and each keeps its fastest
    batch (the machine is shared, so the minimum is the least disturbed measurement)."""
    for _ in range(20):  # warm up: connections, caches
        await bare()
        await ours()
    best = [float("inf"), float("inf")]
    for _ in range(rounds):
        for i, call in enumerate((bare, ours)):
            started = time.perf_counter()
            for _ in range(requests):
                await call()
            best[i] = min(best[i], (time.perf_counter() - started) / requests * 1e6)
    return best[0], best[1]


async def _measure(root: str, requests: int, rounds: int) -> dict[str, float]:
    messages: list[Message] = [UserPrompt(content="Hi")]
    params = ModelRequestParameters(agent_name="bench")
    raw = [{"role": "user", "content": "Hi"}]
    results: dict[str, float] = {}
    settings = OpenAISettings(max_retries=0)
    async with (
        openai.AsyncOpenAI(api_key="k", base_url=f"{root}/v1", max_retries=0) as sdk,
        OpenAIModel("bench", base_url=f"{root}/v1", api_key="k", settings=settings) as model,
    ):
        results["openai_sdk_us"], results["openai_cogent_us"] = await _pair_us(
            lambda: sdk.chat.completions.create(model="bench", messages=raw),  # type: ignore[arg-type]
            lambda: model.request(messages, params),
            requests,
            rounds,
        )
    claude_settings = AnthropicSettings(max_tokens=16, max_retries=0)
    async with (
        anthropic.AsyncAnthropic(api_key="k", base_url=root, max_retries=0) as claude_sdk,
        AnthropicModel("bench", base_url=root, api_key="k", settings=claude_settings) as claude,
    ):
        results["anthropic_sdk_us"], results["anthropic_cogent_us"] = await _pair_us(
            lambda: claude_sdk.messages.create(model="bench", max_tokens=16, messages=raw),  # type: ignore[arg-type]
            lambda: claude.request(messages, params),
            requests,
            rounds,
        )
    results["openai_overhead_us"] = results["openai_cogent_us"] - results["openai_sdk_us"]
    results["anthropic_overhead_us"] = results["anthropic_cogent_us"] - results["anthropic_sdk_us"]
    return results


def run(quick: bool) -> dict[str, float]:
    """Measure per-request time (µs) of each provider, bare SDK vs cogent, against a local server.

    Args:
        quick: Fewer requests (a few hundred in all), for CI.

    Returns:
        `openai_sdk_us`, `openai_cogent_us`, `openai_overhead_us` and the same for
        `anthropic`, in microseconds per request.
    """
    requests, rounds = (25, 4) if quick else (100, 15)
    with _server() as root:
        return anyio.run(_measure, root, requests, rounds)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m benchmarks.providers", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer requests")
    for name, value in run(parser.parse_args().quick).items():
        print(f"{name:24} {value:10.1f}")
