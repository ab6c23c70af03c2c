"""Forks test application processes from one parent that imported the application once.

A crash test starts many short-lived application processes, one per kill point, and
importing DBOS (SQLAlchemy, psycopg) and cogent costs about a second per process on a busy
machine. `python -m durable._zygote MODULE` imports `MODULE` (which must read its
environment when it runs, not at import), then reads one JSON command per line on stdin:
`{"argv": [...], "env": {...}, "stdout": path, "stderr": path}`. For each it forks a child
that takes that environment, sends its output to those files and calls `MODULE.main(argv)`;
it answers `{"pid": ...}` at once and `{"pid": ..., "returncode": ...}` when the child ends
(-9 for a SIGKILL), one command at a time. The parent never starts a thread or an event
loop, so the fork is safe; it exits when stdin closes.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import traceback


def _child(module: object, command: dict[str, object]) -> None:
    """Run one command in the forked child and leave with its exit code (never returns)."""
    code = 1
    try:
        os.environ.clear()
        os.environ.update(command["env"])  # type: ignore[arg-type]
        for fd, path in ((1, command["stdout"]), (2, command["stderr"])):
            target = os.open(str(path), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            os.dup2(target, fd)
            os.close(target)
        module.main(command["argv"])  # type: ignore[attr-defined]
        code = 0
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 1
    except BaseException:
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def main() -> None:
    """Serve fork commands until stdin closes."""
    module = importlib.import_module(sys.argv[1])
    while line := sys.stdin.readline():
        command = json.loads(line)
        sys.stdout.flush()
        pid = os.fork()
        if pid == 0:
            _child(module, command)
        print(json.dumps({"pid": pid}), flush=True)
        _, status = os.waitpid(pid, 0)
        print(json.dumps({"pid": pid, "returncode": os.waitstatus_to_exitcode(status)}), flush=True)


if __name__ == "__main__":
    main()
