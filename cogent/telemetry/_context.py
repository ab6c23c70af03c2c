"""The context fields a span may hold: only those marked `SpanAttribute`, never a secret-named one.

Which fields are marked is found once per context class (from its resolved annotations) and
cached; each agent execution's span then reads those fields' values. Nothing else of the
context (its other fields, its `metadata`, its `query`) is ever read here.
"""

from __future__ import annotations

import dataclasses
import enum
import inspect
import weakref
from collections.abc import Mapping
from typing import Annotated, Any, get_args, get_origin

from pydantic import BaseModel

from .._context_state import _resolve_hints
from .._resources import SpanAttribute
from .._secrets import is_secret_name
from ..context import RunContext
from ..exceptions import UserError

__all__ = ["ATTRIBUTE_PREFIX", "context_attributes", "exported_fields"]

ATTRIBUTE_PREFIX = "cogent.context."
"""The namespace of exported context fields: `cogent.context.<field name>`."""
_NEVER = frozenset({"query", "metadata", "agent"})
"""`RunContext`'s own fields: the run's input, untyped metadata and the agent; never exported."""
_SCALARS = (str, bool, int, float)

_exported: weakref.WeakKeyDictionary[type[Any], tuple[str, ...]] = weakref.WeakKeyDictionary()


def exported_fields(cls: type[RunContext]) -> tuple[str, ...]:
    """Return the fields of context class `cls` that spans hold (marked, not secret-named), once per class.

    Raises:
        UserError: If a field's annotation mentions `SpanAttribute` but cannot be resolved, or
            holds the marker inside another type (e.g. `Annotated[str, SpanAttribute] | None`).
    """
    names = _exported.get(cls)
    if names is None:
        names = _exported[cls] = _find_exported(cls)
    return names


def context_attributes(ctx: RunContext) -> dict[str, Any]:
    """Return the span attributes of `ctx`'s exported fields (a field whose value is `None` is left out).

    Raises:
        UserError: If an exported field holds a mapping, a dataclass or a pydantic model (or a
            sequence holding one), whose text could carry values nobody chose to export.
    """
    names = exported_fields(type(ctx))
    if not names:
        return {}
    attributes: dict[str, Any] = {}
    for name in names:
        value = getattr(ctx, name, None)
        if value is not None:
            attributes[ATTRIBUTE_PREFIX + name] = _attribute_value(value, type(ctx), name)
    return attributes


def _find_exported(cls: type[Any]) -> tuple[str, ...]:
    if not dataclasses.is_dataclass(cls):
        return ()
    hints, _ = _resolve_hints(cls)
    names: list[str] = []
    for f in dataclasses.fields(cls):
        if f.name in _NEVER:
            continue
        hint = hints.get(f.name)
        if f.name not in hints:
            if "SpanAttribute" in _raw_annotation(cls, f.name):
                raise UserError(
                    f"{cls.__qualname__}'s field {f.name!r} is marked SpanAttribute, but its annotation cannot be "
                    "resolved; define the types it names at module level, or import them outside "
                    "`if TYPE_CHECKING:`."
                )
            continue
        if _marked(hint):
            if not is_secret_name(f.name):  # a secret is never exported, marked or not
                names.append(f.name)
        elif _marked_inside(hint):
            raise UserError(
                f"{cls.__qualname__}'s field {f.name!r} has the SpanAttribute marker inside another type; put it at "
                "the top level, e.g. `Annotated[str | None, SpanAttribute]`."
            )
    return tuple(names)


def _raw_annotation(cls: type[Any], name: str) -> str:
    for base in cls.__mro__:
        annotations = inspect.get_annotations(base)
        if name in annotations:
            return str(annotations[name])
    return ""


def _marked(hint: Any) -> bool:
    return get_origin(hint) is Annotated and any(m is SpanAttribute for m in get_args(hint)[1:])


def _marked_inside(hint: Any) -> bool:
    args = get_args(hint)
    if get_origin(hint) is Annotated:
        return _marked_inside(args[0])
    return any(_marked(arg) or _marked_inside(arg) for arg in args)


def _attribute_value(value: Any, cls: type[Any], name: str) -> Any:
    """An OpenTelemetry attribute value: a scalar, or a homogeneous tuple of them."""
    if isinstance(value, list | tuple | set | frozenset):
        items = [_scalar(v, cls, name) for v in value]
        if items and all(type(i) is type(items[0]) for i in items):
            return tuple(items)
        return tuple(str(i) for i in items)
    return _scalar(value, cls, name)


def _scalar(value: Any, cls: type[Any], name: str) -> str | bool | int | float:
    if isinstance(value, enum.Enum):
        value = value.value
    if isinstance(value, _SCALARS):
        return value
    if isinstance(value, Mapping | BaseModel | RunContext | list | tuple | set | frozenset) or dataclasses.is_dataclass(
        value
    ):
        raise UserError(
            f"{cls.__qualname__}'s field {name!r} is marked SpanAttribute but holds a {type(value).__qualname__}, "
            "whose text could carry values nobody chose to export; mark scalar fields (str, int, float, bool, an "
            "enum, or a list of them) instead."
        )
    return str(value)
