"""Group F: cold start.

- `import cogent` in a fresh interpreter: CPU time (user + system) of `python -c "import
  cogent"` minus that of `python -c pass`; the floor is importing cogent's runtime
  dependencies (anyio, pydantic, ...) the same way. CPU time rather than wall time: on a
  shared machine, waiting for a core is not import work; on an idle machine they agree (an
  import uses one core). Bytecode is cached in a private directory (as after `pip install`)
  even when the environment sets `PYTHONDONTWRITEBYTECODE`: without a cache every import
  would also compile. pyperf's warm-up value fills the cache.
- Provider SDKs loaded by that import (a probe): none of openai, anthropic, dbos,
  opentelemetry, mcp, httpx, google.genai may be in `sys.modules` after `import cogent`.
- Decorating 100 distinct tools with `@tool` and building their `definition` (the JSON
  schema the model sees); the floor is one pydantic `TypeAdapter` of a new `TypedDict` and
  its JSON schema per tool.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter
from typing_extensions import TypedDict

import cogent
from cogent import tool

from .registry import Config, Figure, Group, Times, Timing
from .workload import AppContext

PROVIDER_MODULES = ("openai", "anthropic", "dbos", "opentelemetry", "mcp", "httpx", "google.genai")
"""Modules `import cogent` must not load: the extras' SDKs and their transports."""
TOOLS_DECORATED = 100
"""The number of tools in the decoration figure."""
TARGET_IMPORT_MS = 150
"""The issue's target for `import cogent`."""
BYTECODE_CACHE = Path(__file__).resolve().parent / "results" / "pycache"
"""Where the fresh interpreters cache bytecode (`PYTHONPYCACHEPREFIX`; git-ignored)."""
CODES = {
    "F.interpreter": "pass",
    "F.dependencies": "import anyio, docstring_parser, typing_extensions; from pydantic import TypeAdapter",
    "F.cogent": "import cogent",
}
"""The code each import timing runs in fresh interpreters, by timing name."""


def python(code: str) -> str:
    """Run `python -c code` in a fresh interpreter that imports this same `cogent`; return its output.

    Args:
        code: The program.

    Returns:
        What it printed.

    Raises:
        subprocess.CalledProcessError: If the program fails.
    """
    root = str(Path(cogent.__file__).resolve().parent.parent)
    path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, "PYTHONPATH": path, "PYTHONPYCACHEPREFIX": str(BYTECODE_CACHE)}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    done = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, env=env)
    return done.stdout


def _interpreter_timing(name: str, code: str) -> Timing:
    """A timing whose operation is one fresh interpreter running `code`, in CPU seconds."""

    def time_interpreters(loops: int) -> float:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        for _ in range(loops):
            python(code)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        return after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime

    return Timing(name=name, time=time_interpreters)


def _tool_function(i: int) -> Callable[..., Any]:
    async def func(order_id: int, ctx: AppContext, note: str = "") -> str:
        """Look up an order.

        Args:
            order_id: The order number.
            note: A note to attach.
        """
        return f"{order_id} {ctx.user_id} {note}"

    func.__name__ = func.__qualname__ = f"tool_{i}"
    return func


def _arguments_class() -> type:
    class Arguments(TypedDict):  # a new class per call, as each tool has its own arguments
        order_id: int
        note: str

    return Arguments


def _decorate(loops: int) -> float:
    functions = [_tool_function(i) for i in range(loops)]
    start = time.process_time()
    for func in functions:
        tool(func).definition  # noqa: B018 - building the definition is part of the cost
    return time.process_time() - start


def _schemas(loops: int) -> float:
    classes = [_arguments_class() for _ in range(loops)]
    start = time.process_time()
    for cls in classes:
        TypeAdapter(cls).json_schema()
    return time.process_time() - start


def timings(config: Config) -> list[Timing]:
    """Return F's timings: the three interpreter codes, then the schema floor and the decoration."""
    return [
        *(_interpreter_timing(name, code) for name, code in CODES.items()),
        Timing(name="F.decorate.floor", time=_schemas),
        Timing(name="F.decorate", time=_decorate),
    ]


def figures(times: Times, config: Config) -> list[Figure]:
    """Return F's rows: `import cogent`, the provider modules it loads, decorating 100 tools."""
    imported = (times["F.cogent"] - times["F.interpreter"]) * 1e3
    dependencies = (times["F.dependencies"] - times["F.interpreter"]) * 1e3
    loaded: list[str] = json.loads(
        python(f"import cogent, json, sys; print(json.dumps([m for m in {PROVIDER_MODULES!r} if m in sys.modules]))")
    )
    decorate = times["F.decorate"] * (TOOLS_DECORATED * 1e3)
    floor = times["F.decorate.floor"] * (TOOLS_DECORATED * 1e3)
    return [
        Figure(
            key="F.import",
            label="import cogent (fresh interpreter, CPU time)",
            value=imported.median,
            mad=imported.mad,
            unit="ms",
            floor=dependencies.median,
            target=f"<= {TARGET_IMPORT_MS} ms",
            met=imported.median <= TARGET_IMPORT_MS,
            note="minus `python -c pass`, bytecode cached as after pip install; "
            "floor: importing the runtime dependencies (anyio, pydantic, ...)",
        ),
        Figure(
            key="F.providers",
            label="provider SDK modules loaded by import cogent",
            value=len(loaded),
            unit="count",
            target="0",
            met=not loaded,
            note=f"checked: {', '.join(PROVIDER_MODULES)}; loaded: {', '.join(loaded) or 'none'}",
        ),
        Figure(
            key="F.decorate",
            label=f"decorate {TOOLS_DECORATED} tools (with their definitions)",
            value=decorate.median,
            mad=decorate.mad,
            unit="ms",
            floor=floor.median,
            note="distinct functions; floor: one pydantic TypedDict TypeAdapter + JSON schema per tool",
        ),
    ]


GROUP = Group(key="F", title="cold start", timings=timings, figures=figures)
