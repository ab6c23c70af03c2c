"""A small OpenAI-compatible Chat Completions server for tests.

It listens on 127.0.0.1 (a free port) in a background thread, answers
`POST /v1/chat/completions` with scripted replies (as one JSON body, or as
server-sent events when the request says `"stream": true`), and records every request.

```python
with ChatServer() as server:
    server.script = [Reply(tool_calls=[Call("lookup", {"id": 1})]), Reply(text="done")]
    model = server.model()
    ...
    server.requests[0]["messages"]
```
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from cogent.models.openai import OpenAIModel, OpenAISettings

MODEL = "fake-model"


@dataclass(kw_only=True)
class Call:
    """A tool call the server sends."""

    name: str
    arguments: dict[str, Any] | str = field(default_factory=dict)
    id: str | None = None

    def arguments_text(self) -> str:
        return self.arguments if isinstance(self.arguments, str) else json.dumps(self.arguments)


@dataclass(kw_only=True)
class Reply:
    """A successful completion: text and/or tool calls, with token usage."""

    text: str | None = None
    tool_calls: list[Call] = field(default_factory=list)
    input_tokens: int = 10
    output_tokens: int = 5
    chunk_size: int = 4
    """Characters per streamed text chunk and per streamed arguments fragment."""
    pause: threading.Event | None = None
    """When streaming, wait for this event after the first text chunk (at most 10 s)."""


@dataclass(kw_only=True)
class ErrorReply:
    """An HTTP error with an OpenAI-style JSON error body."""

    status: int
    message: str
    retry_after_ms: int | None = None


ScriptItem = Reply | ErrorReply | Callable[[dict[str, Any]], "Reply | ErrorReply"]


class ChatServer:
    """The server; use it as a context manager (it starts and stops the thread)."""

    def __init__(self, *, keep_alive: bool = False) -> None:
        self.keep_alive = keep_alive
        """Keep connections open between requests (as real servers do); off by default so
        that clients the tests do not close leave no open sockets behind."""
        self.script: list[ScriptItem] = []
        """Replies in order; a callable receives the request body and returns a reply."""
        self.requests: list[dict[str, Any]] = []
        """Every request body, parsed, in arrival order."""
        self.raw: list[str] = []
        """Every request as received: request line, headers and body text."""
        self.pauses_released: list[bool] = []
        """Per paused stream: whether the pause event was set (rather than timing out)."""
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler_class(self))
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.02,), daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}/v1"

    def model(self, **settings: Any) -> OpenAIModel:
        """Return an `OpenAIModel` for this server (no SDK retries unless `max_retries=` is given)."""
        settings.setdefault("max_retries", 0)
        return OpenAIModel(MODEL, base_url=self.base_url, api_key="test-key", settings=OpenAISettings(**settings))

    def __enter__(self) -> ChatServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join()

    def _next(self, body: dict[str, Any], raw: str) -> Reply | ErrorReply:
        with self._lock:
            self.requests.append(body)
            self.raw.append(raw)
            if not self.script:
                return ErrorReply(status=500, message="The test server's script is exhausted.")
            item = self.script.pop(0)
        return item(body) if callable(item) else item


def _handler_class(server: ChatServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            """Keep the test output quiet."""

        def do_POST(self) -> None:
            text = self.rfile.read(int(self.headers.get("content-length", 0))).decode()
            if self.path != "/v1/chat/completions":
                self._json(404, {"error": {"message": f"Unknown path {self.path}", "type": "not_found"}})
                return
            body = json.loads(text)
            reply = server._next(body, f"{self.requestline}\n{self.headers}\n{text}")
            if isinstance(reply, ErrorReply):
                headers = {"retry-after-ms": str(reply.retry_after_ms)} if reply.retry_after_ms is not None else {}
                error = {"message": reply.message, "type": "invalid_request_error", "code": None, "param": None}
                self._json(reply.status, {"error": error}, headers)
            elif body.get("stream"):
                self._stream(reply, include_usage=bool((body.get("stream_options") or {}).get("include_usage")))
            else:
                self._json(200, _completion(reply))

        def _json(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            if not server.keep_alive:
                self.send_header("connection", "close")
                self.close_connection = True
            self.end_headers()
            self.wfile.write(data)

        def _stream(self, reply: Reply, *, include_usage: bool) -> None:
            self.send_response(200)
            self.send_header("content-type", "text/event-stream")
            self.send_header("connection", "close")  # the stream's end is the connection's end
            self.end_headers()
            pause = reply.pause
            for chunk in _chunks(reply, include_usage=include_usage):
                self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                self.wfile.flush()
                if pause is not None and chunk["choices"] and chunk["choices"][0]["delta"].get("content"):
                    server.pauses_released.append(pause.wait(10))
                    pause = None
            self.wfile.write(b"data: [DONE]\n\n")
            self.wfile.flush()
            self.close_connection = True

    return Handler


def _calls(reply: Reply) -> list[tuple[str, Call]]:
    return [(call.id or f"call_{i}", call) for i, call in enumerate(reply.tool_calls)]


def _usage(reply: Reply) -> dict[str, int]:
    total = reply.input_tokens + reply.output_tokens
    return {"prompt_tokens": reply.input_tokens, "completion_tokens": reply.output_tokens, "total_tokens": total}


def _completion(reply: Reply) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": reply.text}
    if reply.tool_calls:
        message["tool_calls"] = [
            {"id": id_, "type": "function", "function": {"name": c.name, "arguments": c.arguments_text()}}
            for id_, c in _calls(reply)
        ]
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": 0,
        "model": MODEL,
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": "tool_calls" if reply.tool_calls else "stop",
                "logprobs": None,
            }
        ],
        "usage": _usage(reply),
    }


def _chunks(reply: Reply, *, include_usage: bool) -> list[dict[str, Any]]:
    """The SSE chunks: role, text pieces, tool-call fragments interleaved by index, finish, usage."""
    n = reply.chunk_size
    deltas: list[dict[str, Any]] = [{"role": "assistant", "content": ""}]
    text = reply.text or ""
    deltas += [{"content": text[i : i + n]} for i in range(0, len(text), n)]
    pieces = [
        [c.arguments_text()[i : i + n] for i in range(0, len(c.arguments_text()), n)] or [""] for _, c in _calls(reply)
    ]
    for step in range(max((len(p) for p in pieces), default=0)):
        for index, ((id_, call), parts) in enumerate(zip(_calls(reply), pieces, strict=True)):
            if step >= len(parts):
                continue
            fragment: dict[str, Any] = {"index": index, "function": {"arguments": parts[step]}}
            if step == 0:
                fragment.update(id=id_, type="function")
                fragment["function"]["name"] = call.name
            deltas.append({"tool_calls": [fragment]})
    finish = "tool_calls" if reply.tool_calls else "stop"
    chunks = [
        _chunk([{"index": 0, "delta": delta, "finish_reason": finish if last else None}])
        for last, delta in ((i == len(deltas) - 1, d) for i, d in enumerate(deltas))
    ]
    if include_usage:
        chunks.append(_chunk([], usage=_usage(reply)))
    return chunks


def _chunk(choices: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": MODEL,
        "choices": choices,
        **extra,
    }
