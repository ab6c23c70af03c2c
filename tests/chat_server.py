"""A small OpenAI-compatible Chat Completions server for tests.

It listens on 127.0.0.1 (a free port) in a background thread, answers
`POST /v1/chat/completions` with scripted replies (as one JSON body, or as
server-sent events when the request says `"stream": true`), and records every request.
`Raw` replays a recorded answer as it is (status, content type, body or event stream), on
that path or on `POST /v1/messages` (the Anthropic Messages API, for which `root_url` is the
base URL), and the server counts the connections it accepted and still holds open.

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
import time
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


@dataclass(kw_only=True)
class Raw:
    """A recorded answer, sent as it is: any status, content type and body."""

    body: str | dict[str, Any]
    """The body: text as it is, or a JSON object (serialized)."""
    status: int = 200
    content_type: str = "application/json"


def events(*items: dict[str, Any] | str) -> Raw:
    """A recorded event stream: each dict becomes a `data:` event, each str is sent as it is."""
    text = "".join(f"data: {json.dumps(i)}\n\n" if isinstance(i, dict) else i for i in items)
    return Raw(body=text, content_type="text/event-stream")


Answer = Reply | ErrorReply | Raw
ScriptItem = Answer | Callable[[dict[str, Any]], Answer]


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
        self.connections_accepted = 0
        """How many TCP connections clients opened to the server."""
        self._open = 0
        self._lock = threading.Lock()
        self._httpd = _CountingServer(("127.0.0.1", 0), _handler_class(self), self)
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.02,), daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}/v1"

    @property
    def root_url(self) -> str:
        """The server's root URL (the Anthropic SDK adds `/v1/messages` itself)."""
        return self.base_url.removesuffix("/v1")

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

    @property
    def connections_open(self) -> int:
        """How many connections are open right now (accepted and not yet closed by either side)."""
        with self._lock:
            return self._open

    def wait_connections_open(self, at_most: int, timeout: float = 5.0) -> int:
        """Wait until at most `at_most` connections are open (the server notices a close a moment
        after the client makes it); return the number open then."""
        deadline = time.monotonic() + timeout
        while self.connections_open > at_most and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.connections_open

    def _next(self, body: dict[str, Any], raw: str) -> Answer:
        with self._lock:
            self.requests.append(body)
            self.raw.append(raw)
            if not self.script:
                return ErrorReply(status=500, message="The test server's script is exhausted.")
            item = self.script.pop(0)
        return item(body) if callable(item) else item


class _CountingServer(ThreadingHTTPServer):
    """A threading HTTP server that counts the connections it accepts and closes."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], owner: ChatServer) -> None:
        self.owner = owner
        super().__init__(address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.owner._lock:
            self.owner.connections_accepted += 1
            self.owner._open += 1
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        super().shutdown_request(request)
        with self.owner._lock:
            self.owner._open -= 1


def _handler_class(server: ChatServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body go out as separate writes on kept-alive connections

        def log_message(self, format: str, *args: Any) -> None:
            """Keep the test output quiet."""

        def do_POST(self) -> None:
            text = self.rfile.read(int(self.headers.get("content-length", 0))).decode()
            if self.path not in ("/v1/chat/completions", "/v1/messages"):
                self._json(404, {"error": {"message": f"Unknown path {self.path}", "type": "not_found"}})
                return
            body = json.loads(text)
            reply = server._next(body, f"{self.requestline}\n{self.headers}\n{text}")
            if isinstance(reply, Raw):
                self._raw(reply)
            elif isinstance(reply, ErrorReply):
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

        def _raw(self, reply: Raw) -> None:
            if isinstance(reply.body, str) and reply.content_type == "text/event-stream":
                self._start_stream(reply.status)
                self._send_event(reply.body)
                self._end_stream()
                return
            data = (reply.body if isinstance(reply.body, str) else json.dumps(reply.body)).encode()
            self.send_response(reply.status)
            self.send_header("content-type", reply.content_type)
            self.send_header("content-length", str(len(data)))
            if not server.keep_alive:
                self.send_header("connection", "close")
                self.close_connection = True
            self.end_headers()
            self.wfile.write(data)

        def _start_stream(self, status: int = 200) -> None:
            """Start an event stream: chunked when connections are kept alive, else ended by closing."""
            self.send_response(status)
            self.send_header("content-type", "text/event-stream")
            if server.keep_alive:
                self.send_header("transfer-encoding", "chunked")
            else:
                self.send_header("connection", "close")  # the stream's end is the connection's end
                self.close_connection = True
            self.end_headers()

        def _send_event(self, text: str) -> None:
            data = text.encode()
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data) if server.keep_alive else data)
            self.wfile.flush()

        def _end_stream(self) -> None:
            if server.keep_alive:
                self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()

        def _stream(self, reply: Reply, *, include_usage: bool) -> None:
            self._start_stream()
            pause = reply.pause
            for chunk in _chunks(reply, include_usage=include_usage):
                self._send_event(f"data: {json.dumps(chunk)}\n\n")
                if pause is not None and chunk["choices"] and chunk["choices"][0]["delta"].get("content"):
                    server.pauses_released.append(pause.wait(10))
                    pause = None
            self._send_event("data: [DONE]\n\n")
            self._end_stream()

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
