"""Secrets: which names hold one, and `repr()` text with their values masked."""

from __future__ import annotations

from typing import Any

__all__ = ["MASK", "is_secret_name", "masked_repr"]

SECRET_WORDS = ("password", "passwd", "secret", "token", "api_key", "apikey", "credential", "private_key")
MASK = "'***'"


def is_secret_name(name: str) -> bool:
    """Return whether a field or metadata key names a secret, so its value is never printed.

    The rule: the lowercased name contains one of `password`, `passwd`, `secret`,
    `token`, `api_key`, `apikey`, `credential` or `private_key`.

    Args:
        name: A field name or a metadata key.
    """
    lowered = name.lower()
    return any(word in lowered for word in SECRET_WORDS)


def masked_repr(value: Any, seen: frozenset[int] = frozenset()) -> str:
    """Return `repr(value)` with the values of secret-named keys masked, also in nested dicts and lists."""
    if id(value) in seen:
        return "{...}" if isinstance(value, dict) else "[...]"
    inner = seen | {id(value)}
    if isinstance(value, dict):
        items = (
            f"{k!r}: {MASK if isinstance(k, str) and is_secret_name(k) else masked_repr(v, inner)}"
            for k, v in value.items()
        )
        return "{" + ", ".join(items) + "}"
    if type(value) is list:
        return "[" + ", ".join(masked_repr(v, inner) for v in value) + "]"
    if type(value) is tuple:
        return "(" + ", ".join(masked_repr(v, inner) for v in value) + ("," if len(value) == 1 else "") + ")"
    return repr(value)
