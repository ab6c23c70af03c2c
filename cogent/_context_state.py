"""A context's state as JSON: what a durable run checkpoints, and how a context comes back.

A context field is either *state* or a *resource*:

- **State** (every field not marked otherwise): ids, permissions, `metadata`, task
  lineage, depth, retry counters, `started_at` and `deadline`. `dump_state()` writes it
  as JSON with pydantic, from the field annotations (never pickle), so `restore()` gives
  back values of the declared types: aware datetimes stay aware datetimes (with their
  UTC offset; a zone name such as `Europe/Paris` comes back as a fixed offset), sets stay
  sets, nested dataclasses and pydantic models come back as themselves (as the
  annotated class, not a subclass held in the field), `bytes` travel as base64, and
  infinite floats survive.
- **Resources** (annotated `Annotated[T, Resource]`, see `cogent._resources`):
  connections, clients, locks, caches. They are never written. `restore()` gets them
  from the application's factory, or from their field defaults.

Fields declared with `init=False` (such as `RunContext.agent`) are neither: the class's
`__init__` (its defaults and `__post_init__`) re-creates them, as it does for any new
instance. A field whose annotation contains `Any` or `object` (`metadata:
dict[str, Any]`, a bare `dict`) can only hold plain JSON values (str, int, finite
float, bool, None, lists and str-keyed dicts of those): anything else would come back
as another type, so `dump_state()` refuses it and names the key.

`load_state()` sets the state fields of a live context in place (its resources stay):
a resumed run uses it to apply the context changes a replayed step had made.
`export_decisions()` / `import_decisions()` do the same for the approval decisions
recorded on a context, which are not fields.

Secret-named fields (`cogent.context.is_secret_name`) are masked in `repr()`, but as
state they are written into every checkpoint, like any input of the run. To keep a
secret out of checkpoints, mark the field a resource and supply it again on restore.

Everything derived from a class (the split, the pydantic validator and serializer) is
computed once per class; `context_layout()` raises a `UserError` naming every field
that cannot be state, before a run starts.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import sys
import types
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, TypeAlias, TypeVar, get_args, get_origin, get_type_hints

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, create_model
from pydantic_core import PydanticSerializationError

from ._decisions import ApprovalRecord
from ._resources import Resource
from .context import RunContext
from .exceptions import UserError

__all__ = [
    "ContextLayout",
    "ResourceFactory",
    "context_layout",
    "dump_state",
    "export_decisions",
    "import_decisions",
    "load_state",
    "restore",
]

C = TypeVar("C", bound=RunContext)

ResourceFactory: TypeAlias = Callable[[Mapping[str, Any]], Mapping[str, Any]]
"""Makes a restored context's resources: receives the restored state (field name to
value, read-only) and returns the resource fields' values by field name."""

# Core-schema node types whose values have no JSON form: an instance check of an
# arbitrary class, a class object, a callable, a generator.
_NOT_JSON = frozenset({"is-instance", "is-subclass", "callable", "generator"})
_JSON_SCALARS = (str, int, float, bool, type(None))
_STATE_CONFIG = ConfigDict(
    extra="forbid",
    hide_input_in_errors=True,  # a state may hold secrets: errors never echo values
    ser_json_bytes="base64",
    val_json_bytes="base64",
    ser_json_inf_nan="strings",
)


@dataclass(frozen=True, kw_only=True, slots=True)
class ContextLayout:
    """How one context class splits into state and resources (see `context_layout()`).

    The approval decisions recorded on a context (`approve_tool(..., always_approve=True)`)
    are not fields, so they are not part of its state.
    """

    state_fields: tuple[str, ...]
    """The fields `dump_state()` writes, in declaration order."""
    resource_fields: tuple[str, ...]
    """The `__init__` fields marked `Resource`, in declaration order."""
    required_resources: frozenset[str]
    """The resource fields without a default: a restore must supply them."""
    json_only_fields: frozenset[str]
    """State fields whose annotation contains `Any`: their values must be plain JSON."""
    model: type[BaseModel]
    """The pydantic model of the state (fields `f0`, `f1`, ... aliased to the real names)."""


_layouts: weakref.WeakKeyDictionary[type[Any], ContextLayout] = weakref.WeakKeyDictionary()


def context_layout(context_type: type[RunContext]) -> ContextLayout:
    """Return how `context_type` splits into state and resources, computed once per class.

    Call it when a durable run is configured, so that a context class that cannot be
    checkpointed fails before any run starts.

    Args:
        context_type: A `RunContext` subclass (a plain, frozen, slotted or pydantic dataclass).

    Returns:
        The class's layout (cached: later calls return the same object).

    Raises:
        UserError: If `context_type` is not a `RunContext` dataclass, or if any of its
            fields cannot be state: an annotation that cannot be resolved, a type pydantic
            cannot write as JSON (a connection, a lock, a callable), a `Resource` marker
            nested inside another type, or a required `InitVar`. One error lists every
            problem of the class, each naming its field and the fix.
    """
    layout = _layouts.get(context_type)
    if layout is None:
        layout = _build_layout(context_type)
        _layouts[context_type] = layout
    return layout


def dump_state(context: RunContext) -> str:
    """Return the state of `context` as JSON text: every state field, no resource.

    Args:
        context: The context to checkpoint.

    Returns:
        Compact JSON (an object keyed by field name) that `restore()` turns back into
        an equal context.

    Raises:
        UserError: If the class cannot be checkpointed (see `context_layout()`), or if
            a value does not fit its field: a value of another type than annotated, or a
            non-JSON value (a datetime, a set, an object, NaN) under `Any` such as a
            `metadata` entry. One error lists every such field or key; no value is
            ever printed.
    """
    if not isinstance(context, RunContext):
        raise UserError(
            f"dump_state() needs a RunContext instance, got {type(context).__name__}; pass the run's context object."
        )
    layout = context_layout(type(context))
    values = {name: getattr(context, name) for name in layout.state_fields}
    problems = [
        problem
        for name in layout.state_fields
        if name in layout.json_only_fields
        for problem in _non_json_values(values[name], name)
    ]
    state = layout.model.model_construct(**{f"f{i}": values[name] for i, name in enumerate(layout.state_fields)})
    if not problems:
        try:
            return state.model_dump_json(by_alias=True, warnings="error")
        except PydanticSerializationError:
            pass
    problems.extend(_mistyped_fields(layout, state, values))
    cls = type(context).__qualname__
    if not problems:  # pragma: no cover - pydantic failed on a value that passes each field's own check
        problems.append("a value could not be serialized")
    raise UserError(
        f"The state of this {cls} cannot be checkpointed: "
        + "; ".join(problems)
        + ". Give each field a value of its annotated type, keep plain JSON values under `Any` "
        "(store a datetime as .isoformat(), a set as a sorted list), or mark the field "
        "`Annotated[..., Resource]` to keep it out of checkpoints."
    )


def restore(context_type: type[C], state: str | bytes, *, resources: ResourceFactory | None = None) -> C:
    """Build a context of `context_type` from checkpointed state and fresh resources.

    The state is validated against the class's field annotations, `resources` (when
    given) is called once with the restored state, and the context is built with the
    class's own `__init__`, so `__post_init__` and pydantic validation run as for any
    new instance. Resource fields the factory does not return keep their defaults.

    Args:
        context_type: The class the state was dumped from.
        state: JSON text from `dump_state()`.
        resources: Makes the resources: receives the restored state (field name to
            value, read-only) and returns a mapping of resource field names to values,
            e.g. `lambda state: {"db": connect(state["tenant_id"])}`. May be omitted
            when every resource field has a default.

    Returns:
        A new instance of `context_type` whose state equals the dumped one.

    Raises:
        UserError: If the class cannot be checkpointed (see `context_layout()`), if
            `state` is not JSON of this class's state (another class, a class whose
            fields changed since, a corrupted text), or if the resources do not match:
            a name that is not a resource field of the class, or a resource field
            without a default that is not supplied.
    """
    layout = context_layout(context_type)
    name = context_type.__qualname__
    values = _parse(layout, state, name)
    supplied = _call_factory(resources, values, name) if resources is not None else {}
    unknown = sorted(set(supplied) - set(layout.resource_fields))
    missing = sorted(layout.required_resources - set(supplied))
    if unknown or missing:
        parts = [f"{_names(unknown)} not among its resource fields"] if unknown else []
        if missing:
            parts.append(f"no value for the required resource field(s) {_names(missing)}")
        raise UserError(
            f"Cannot restore {name}: {' and '.join(parts)}. Its resource fields are "
            f"{_names(layout.resource_fields) or 'none'}; `resources=` must return a value for each one "
            "without a default, and nothing else."
        )
    return context_type(**values, **supplied)


def load_state(context: RunContext, state: str | bytes) -> None:
    """Set the state fields of a live context, in place, from checkpointed state; its resources stay.

    This is how a resumed run catches up with changes a step made to the context
    before the crash: the step's checkpoint carries `dump_state(context)`, and when the
    step is replayed instead of run, the runner loads that state into the context it
    executes with. The fields are set directly (also on frozen classes) and
    `__post_init__` does not run: the values were valid when they were dumped.

    Args:
        context: The context to update.
        state: JSON text from `dump_state()` of a context of the same class.

    Raises:
        UserError: If `context` is not a `RunContext`, its class cannot be checkpointed
            (see `context_layout()`), or `state` is not JSON of this class's state.
    """
    if not isinstance(context, RunContext):
        raise UserError(
            f"load_state() needs a RunContext instance, got {type(context).__name__}; pass the run's context object."
        )
    layout = context_layout(type(context))
    for name, value in _parse(layout, state, type(context).__qualname__).items():
        object.__setattr__(context, name, value)


def _parse(layout: ContextLayout, state: str | bytes, name: str) -> dict[str, Any]:
    """Validate checkpointed state against a layout; return the state fields' values by name."""
    try:
        parsed = layout.model.model_validate_json(state)
    except ValidationError as error:
        details = "; ".join(
            f"{_location(e['loc'], layout)}: {e['msg']}" for e in error.errors(include_input=False, include_url=False)
        )
        raise UserError(
            f"The checkpointed state does not fit {name}: {details}. Restore it with the class it was dumped "
            "from, with the same fields as when it was dumped."
        ) from None
    return {field_name: getattr(parsed, f"f{i}") for i, field_name in enumerate(layout.state_fields)}


def _call_factory(resources: ResourceFactory, values: dict[str, Any], name: str) -> dict[str, Any]:
    made = resources(types.MappingProxyType(values))
    if not isinstance(made, Mapping):
        raise UserError(
            f"The resource factory for {name} returned a {type(made).__qualname__}; return a mapping of resource "
            'field names to values, e.g. `{"db": connect()}`.'
        )
    return dict(made)


def export_decisions(context: RunContext) -> dict[str, Any]:
    """Return the approval decisions a context holds (or shares) as JSON-able data.

    They are not fields, so not part of `dump_state()`; a durable run checkpoints them
    next to the state, so that permanent approvals (`approve_tool(item,
    always_approve=True)`) and per-call decisions survive a crash. `import_decisions()`
    puts them back.

    Args:
        context: The context (its decisions are those of the store it shares).

    Returns:
        `{"records": {tool: {"approved": bool | [call ids], "rejected": ...}}, "per_item":
        {approval key: bool}}`, with copies of the lists.
    """
    store = context._approvals()
    records = {
        name: {"approved": _decision(r.approved), "rejected": _decision(r.rejected)}
        for name, r in store.records.items()
    }
    return {"records": records, "per_item": dict(store.per_item)}


def import_decisions(context: RunContext, data: Any) -> None:
    """Replace the approval decisions of a context (in the store it shares) with `export_decisions()` data.

    Args:
        context: The context.
        data: What `export_decisions()` returned.

    Raises:
        UserError: If `data` is not what `export_decisions()` returns.
    """
    try:
        records = {
            str(name): ApprovalRecord(approved=_decision(r["approved"]), rejected=_decision(r["rejected"]))
            for name, r in data["records"].items()
        }
        per_item = {str(key): value for key, value in data["per_item"].items() if type(value) is bool}
        if len(per_item) != len(data["per_item"]):
            raise TypeError("a per-call decision is not a bool")
    except (KeyError, TypeError, AttributeError) as error:
        raise UserError(
            f"The checkpointed approval decisions are malformed ({error}); they must come from export_decisions()."
        ) from None
    store = context._approvals()
    store.records = records
    store.per_item = per_item


def _decision(value: Any) -> bool | list[str]:
    if type(value) is bool:
        return value
    if isinstance(value, list) and all(type(v) is str for v in value):
        return list(value)
    raise TypeError(f"a decision is a {type(value).__name__}, not a bool or a list of call ids")


# --- Building a layout ---------------------------------------------------------------


def _build_layout(context_type: type[RunContext]) -> ContextLayout:
    if not (isinstance(context_type, type) and issubclass(context_type, RunContext)):
        raise UserError(
            f"A context layout needs a RunContext subclass, got {context_type!r}; pass the context class itself."
        )
    if "__dataclass_fields__" not in context_type.__dict__:
        raise UserError(
            f"{context_type.__qualname__} is a RunContext subclass without its own @dataclass decorator, so its "
            "annotations are not fields; decorate it with @dataclass (or a pydantic dataclass)."
        )
    hints, problems = _resolve_hints(context_type)
    state: list[tuple[str, Any]] = []
    resources: list[str] = []
    required: set[str] = set()
    json_only: set[str] = set()
    for f in dataclasses.fields(context_type):
        if f.name not in hints:  # unresolvable: already reported
            continue
        hint = hints[f.name]
        marked = _is_resource(hint)
        if not marked and _has_nested_marker(hint):
            problems.append(
                f"field {f.name!r} has the Resource marker inside another type; put it at the top level, "
                f"e.g. `Annotated[T | None, Resource]`"
            )
            continue
        if not f.init:
            continue
        if marked:
            resources.append(f.name)
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                required.add(f.name)
            continue
        kinds, error = _schema_kinds(hint)
        if error is not None or kinds & _NOT_JSON:
            problems.append(
                f"field {f.name!r} ({_type_name(hint)}) has no JSON form; mark it a resource "
                f"(`{f.name}: Annotated[{_type_name(hint)}, Resource]`) or give it a serializable type"
            )
            continue
        if "any" in kinds:
            json_only.add(f.name)
        state.append((f.name, hint))
    problems.extend(_required_init_vars(context_type, hints))
    if problems:
        raise UserError(
            f"{context_type.__qualname__} cannot be checkpointed for a durable run: " + "; ".join(problems) + "."
        )
    definitions: dict[str, Any] = {f"f{i}": (hint, Field(alias=name)) for i, (name, hint) in enumerate(state)}
    model = create_model(f"{context_type.__name__}State", __config__=_STATE_CONFIG, **definitions)
    return ContextLayout(
        state_fields=tuple(name for name, _ in state),
        resource_fields=tuple(resources),
        required_resources=frozenset(required),
        json_only_fields=frozenset(json_only),
        model=model,
    )


def _resolve_hints(cls: type[Any]) -> tuple[dict[str, Any], list[str]]:
    """Return the class's resolved annotations and, for those that cannot be resolved, one problem each."""
    try:
        return get_type_hints(cls, include_extras=True), []
    except Exception:
        return _resolve_each(cls)


def _resolve_each(cls: type[Any]) -> tuple[dict[str, Any], list[str]]:
    """Resolve the annotations of the class's fields one at a time, to name every one that fails."""
    fields = {f.name for f in dataclasses.fields(cls)}
    hints: dict[str, Any] = {}
    problems: list[str] = []
    for base in reversed(cls.__mro__):
        module = sys.modules.get(base.__module__)
        globalns = dict(vars(module)) if module is not None else {}
        for name, annotation in inspect.get_annotations(base).items():
            if name not in fields:
                continue
            holder = types.SimpleNamespace(__annotations__={name: annotation})
            try:
                hints.update(get_type_hints(holder, globalns=globalns, localns=dict(vars(base)), include_extras=True))
            except Exception as error:
                hints.pop(name, None)
                problems.append(
                    f"the annotation of field {name!r} ({annotation!r}) cannot be resolved ({error}); define the "
                    "types it names at module level, or import them outside `if TYPE_CHECKING:`"
                )
    return hints, problems


def _is_resource(hint: Any) -> bool:
    return get_origin(hint) is Annotated and any(m is Resource for m in get_args(hint)[1:])


def _has_nested_marker(hint: Any) -> bool:
    args = get_args(hint)
    if get_origin(hint) is Annotated:
        return _has_nested_marker(args[0])
    return any(_is_resource(arg) or _has_nested_marker(arg) for arg in args)


def _schema_kinds(hint: Any) -> tuple[frozenset[str], str | None]:
    """Return the core-schema node types a value of `hint` is written with (the JSON side), or an error."""
    try:
        schema = TypeAdapter(hint).core_schema
    except Exception as error:  # pydantic raises several kinds for types it cannot handle
        return frozenset(), str(error)
    return frozenset(_walk_kinds(schema)), None


def _walk_kinds(node: Any) -> Iterator[str]:
    if isinstance(node, Mapping):
        kind = node.get("type")
        if isinstance(kind, str):
            yield kind
        for key, value in node.items():
            # Only what JSON goes through: not the Python-input branch, not custom serializers' metadata.
            if (kind == "json-or-python" and key == "python_schema") or key in ("serialization", "metadata"):
                continue
            yield from _walk_kinds(value)
    elif isinstance(node, list | tuple):
        for item in node:
            yield from _walk_kinds(item)


def _required_init_vars(cls: type[Any], hints: Mapping[str, Any]) -> list[str]:
    declared = cls.__dict__.get("__dataclass_fields__", {})
    return [
        f"InitVar {name!r} has no default, so the class cannot be rebuilt from its fields; give it a default"
        for name, hint in hints.items()
        if isinstance(hint, dataclasses.InitVar)
        and name in declared
        and declared[name].default is dataclasses.MISSING
        and declared[name].default_factory is dataclasses.MISSING
    ]


def _type_name(hint: Any) -> str:
    if isinstance(hint, type) or (callable(hint) and hasattr(hint, "__qualname__") and not get_args(hint)):
        return str(hint.__qualname__)
    return repr(hint).replace("typing.", "")


def _names(names: Iterable[str]) -> str:
    return ", ".join(repr(n) for n in names)


def _location(loc: tuple[int | str, ...], layout: ContextLayout) -> str:
    """Return a pydantic error location with the aliased field names (`f3`) shown as their fields."""
    if not loc:
        return "the state"
    head = loc[0]
    if (
        isinstance(head, str)
        and head.startswith("f")
        and head[1:].isdigit()
        and int(head[1:]) < len(layout.state_fields)
    ):
        head = layout.state_fields[int(head[1:])]
    return ".".join(str(part) for part in (head, *loc[1:]))


# --- Checking values -------------------------------------------------------------------


def _non_json_values(value: Any, path: str) -> Iterator[str]:
    """Yield one problem per value under `path` that is not plain JSON (exact JSON types, str keys)."""
    kind = type(value)
    if kind is float and not math.isfinite(value):
        yield f"{path} holds a non-finite float, which has no JSON form"
    elif kind in _JSON_SCALARS:
        return
    elif kind is list:
        for i, item in enumerate(value):
            yield from _non_json_values(item, f"{path}[{i}]")
    elif kind is dict:
        for key, item in value.items():
            if type(key) is not str:
                yield f"{path} has a key of type {type(key).__name__}; JSON object keys are strings"
            else:
                yield from _non_json_values(item, f"{path}[{key!r}]")
    else:
        yield f"{path} holds a value of type {kind.__qualname__}, which is not a plain JSON value"


def _mistyped_fields(layout: ContextLayout, state: BaseModel, values: Mapping[str, Any]) -> list[str]:
    """Return one problem per typed state field whose value does not serialize as its annotation (the slow path)."""
    problems = []
    for i, name in enumerate(layout.state_fields):
        if name in layout.json_only_fields:
            continue
        try:
            state.model_dump_json(include={f"f{i}"}, warnings="error")
        except PydanticSerializationError:
            kind = type(values[name]).__qualname__
            problems.append(f"field {name!r} holds a value of type {kind}, which does not fit its annotation")
    return problems
