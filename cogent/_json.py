"""Text and JSON for values that may hold lone surrogates, which UTF-8 cannot encode: a model's
`"\udc80"` escape, input decoded with `surrogateescape`, half of a split surrogate pair."""

from __future__ import annotations

import json
from typing import Any, TypeVar

from pydantic import TypeAdapter, ValidationError
from pydantic_core import PydanticSerializationError, to_json, to_jsonable_python

__all__ = ["json_text", "parse_json", "utf8_safe", "valid_utf8"]

T = TypeVar("T")


def json_text(value: Any, adapter: TypeAdapter[Any] | None = None) -> str:
    """Return `value` as JSON text, serialized by pydantic (by `adapter` when given, else by
    value with `str()` for unknown types).

    Strings with lone surrogates (a model's `"\\udc80"` escape, text decoded with
    `surrogateescape`) cannot be UTF-8 encoded, so pydantic refuses them; such a value is
    written with `\\u` escapes instead, which `parse_json` reads back as the same strings.

    Raises:
        pydantic_core.PydanticSerializationError: If `adapter` cannot serialize `value` at all.
    """
    try:
        data = adapter.dump_json(value) if adapter is not None else to_json(value, fallback=str)
    except PydanticSerializationError:
        python = (
            adapter.dump_python(value, mode="json") if adapter is not None else to_jsonable_python(value, fallback=str)
        )
        return json.dumps(python, ensure_ascii=True)
    return data.decode()


def parse_json(adapter: TypeAdapter[T], data: str | bytes) -> T:
    """Validate JSON text with `adapter`, also when it escapes lone surrogates (pydantic's JSON
    parser refuses them; Python's reads them, and the result is validated the same way).

    Raises:
        pydantic.ValidationError: If `data` is not JSON, or not a valid value.
    """
    try:
        return adapter.validate_json(data)
    except ValidationError as exc:
        if not any(e["type"] == "json_invalid" for e in exc.errors()):
            raise
        try:
            python = json.loads(data)
        except ValueError:
            raise exc from None
        return adapter.validate_python(python)


def valid_utf8(text: str) -> str:
    """Return `text` as UTF-8 can encode it: surrogate pairs joined, lone surrogates as U+FFFD."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text


def utf8_safe(value: Any) -> Any:
    """Return a JSON-like value (dicts, lists, strings, ...) with every string made `valid_utf8`,
    e.g. a provider request body, which must be UTF-8."""
    if isinstance(value, str):
        return valid_utf8(value)
    if isinstance(value, dict):
        return {utf8_safe(k): utf8_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [utf8_safe(v) for v in value]
    return value
