"""Run the test MCP server over streamable HTTP on 127.0.0.1: `python http_server.py RECORD_FILE`.

It binds a free port itself and prints it as the first line of its stdout, so the test that
starts it never races another process for a port.
"""

from __future__ import annotations

import socket
import sys

import uvicorn
from app import build


def main(record_path: str) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    print(sock.getsockname()[1], flush=True)
    app = build(record_path).streamable_http_app()
    config = uvicorn.Config(app, log_level="warning", lifespan="on")
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    main(sys.argv[1])
