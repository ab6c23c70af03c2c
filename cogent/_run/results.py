"""Values as the model sees them: tool results and error messages, always valid UTF-8 text."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from pydantic import ValidationError
from pydantic_core import PydanticSerializationError, to_json, to_jsonable_python

from .._json import valid_utf8

__all__ = ["error_text", "to_text", "validation_problem"]


def to_text(value: Any) -> str:
    """Return a tool's result as the text the model receives.

    A `str` goes as it is; other values as JSON (pydantic); a value pydantic cannot
    serialize falls back to `str()` (a tool that returned normally is never reported as
    failed). A run context is never serialized (pydantic writes a placeholder). Lone
    surrogates become U+FFFD, so the text is always valid UTF-8.
    """
    if isinstance(value, str):
        return valid_utf8(value)
    try:
        text = to_json(value).decode()
    except (PydanticSerializationError, ValueError, TypeError, RecursionError):
        if isinstance(value, list | tuple | dict | set | frozenset):
            # JSON, with str() for what pydantic cannot serialize; the standard library's encoder
            # escapes lone surrogates (pydantic's refuses them).
            text = _safe(
                value,
                lambda: json.dumps(to_jsonable_python(value, fallback=str), separators=(",", ":")),
                lambda: str(value),
            )
        else:
            text = _safe(value, lambda: str(value))
    return valid_utf8(text)


def error_text(exc: BaseException) -> str:
    """Return `Error: <message>` for the model (the class name when the message is empty)."""
    message = _safe(exc, lambda: str(exc))
    return valid_utf8(f"Error: {message or type(exc).__name__}")


def _safe(value: object, *renderers: Callable[[], object]) -> str:
    """Return the first rendering of `value` that works (a `__str__` may raise)."""
    for render in renderers:
        try:
            return str(render())
        except Exception:  # noqa: S112 - try the next rendering
            continue
    return f"<{type(value).__qualname__} that cannot be shown>"


def validation_problem(name: str, exc: Exception) -> str:
    """Return the retry prompt for arguments (or a final answer) that failed validation."""
    if isinstance(exc, ValidationError):
        detail = "\n".join(
            f"- {'.'.join(str(p) for p in e['loc']) or '(arguments)'}: {e['msg']}"
            for e in exc.errors(include_url=False, include_input=False)
        )
    else:
        detail = f"- {type(exc).__name__}: {error_text(exc).removeprefix('Error: ')}"
    return f"The arguments for {name!r} are invalid:\n{detail}\nFix the errors and try again."
