"""The 15 retail operations of `store.py` as cogent tools.

Each operation is defined once, in `store.py`, as `op(ctx, ...)` where `ctx` is
annotated with the structural protocol `HasRetailDB` (so the data layer does not depend
on cogent). cogent finds the injected parameter by a `RunContext` annotation, so
`retail_tool` re-annotates `ctx` as `RetailContext` on a thin wrapper; the signature,
the docstring (the tool and parameter descriptions) and the behaviour stay the store's.
A `RetailError` raised by an operation reaches the model as `"Error: <message>"`, which
is exactly the reference output.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from cogent import Tool

from .context import RetailContext
from .store import ALL_OPERATIONS, WRITE_OPERATIONS

__all__ = ["IDENTIFICATION_TOOLS", "TOOLS", "WRITE_TOOLS", "retail_tool"]


def retail_tool(operation: Callable[..., str], *, requires_approval: bool = False) -> Tool[..., str]:
    """Return a store operation as a tool that receives the run's `RetailContext`.

    The tool runs inline on the event loop (`threaded=False`): the operations work on
    an in-memory database and take microseconds.

    Args:
        operation: A store operation whose first parameter is `ctx`.
        requires_approval: Whether every call needs an approval first (write tools).

    Returns:
        The tool, named after the operation.
    """

    @functools.wraps(operation)  # the signature and docstring the framework reads are the operation's
    def call(*args: Any, **kwargs: Any) -> str:
        return operation(*args, **kwargs)

    # `wraps` shares the operation's annotation dict: give the wrapper its own, with
    # the context parameter typed as the context class the framework injects.
    call.__annotations__ = {**operation.__annotations__, "ctx": RetailContext}
    return Tool(call, requires_approval=requires_approval, threaded=False)


TOOLS: dict[str, Tool[..., str]] = {
    operation.__name__: retail_tool(operation, requires_approval=operation in WRITE_OPERATIONS)
    for operation in ALL_OPERATIONS
}
"""All 15 tools by name; the 7 write tools require approval."""

WRITE_TOOLS: frozenset[str] = frozenset(operation.__name__ for operation in WRITE_OPERATIONS)
"""The names of the tools that change the database."""

IDENTIFICATION_TOOLS: frozenset[str] = frozenset({"find_user_id_by_email", "find_user_id_by_name_zip"})
"""The tools that authenticate the customer: a successful call returns their user id."""
