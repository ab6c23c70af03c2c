"""The context field markers: `Resource` (re-created, never checkpointed) and
`SpanAttribute` (exported to OpenTelemetry spans).

A durable run checkpoints its context's *state* (ids, permissions, metadata, lineage,
deadlines, retry counters) and re-creates its *resources* (database connections,
clients, locks, caches) when a run resumes in another process. Every field is state
unless its annotation carries the marker::

    from typing import Annotated

    @dataclass
    class AppContext(RunContext):
        user_id: str                                   # state: checkpointed
        db: Annotated[Database, Resource]              # resource: re-created on restore
        cache: Annotated[dict[str, str], Resource] = field(default_factory=dict)
        tenant_id: Annotated[str, SpanAttribute] = ""  # exported as cogent.context.tenant_id

Telemetry (`cogent.telemetry`) never exports a context value, except the fields whose
annotation carries `SpanAttribute` (and never a secret-named one, even then).

Type checkers see `db` as a plain `Database` (`Annotated` metadata changes nothing for
them), so a marker costs nothing in the code that uses the field. A marker is an
object, not a class: `Annotated[Database, Resource()]` is a type error for mypy and a
`TypeError` at run time.

Secret-named fields (see `cogent.context.is_secret_name`: `api_token`, `password`, ...)
are masked in `repr()` but, as state, they are checkpointed like any other input of a
run. Mark such a field a resource to keep it out of checkpoints and pass it again when
the context is restored.

This module imports nothing from cogent, so `cogent.context` can re-export the markers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final, NoReturn, final

__all__ = ["Resource", "SpanAttribute"]


@final
class _Marker:
    """The type of the field markers (one instance per marker, named after it)."""

    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        self._name = name

    def __repr__(self) -> str:
        return self._name

    def __reduce__(self) -> str:
        return self._name  # pickles (and deep-copies) as the module-level singleton

    if not TYPE_CHECKING:  # invisible to type checkers, so that `Resource()` is a type error

        def __call__(self, *args: Any, **kwargs: Any) -> NoReturn:
            raise TypeError(
                f"{self._name} is a marker, not a class: write `Annotated[T, {self._name}]`, not "
                f"`Annotated[T, {self._name}()]`."
            )


Resource: Final = _Marker("Resource")
"""Marks a context field as a resource: `name: Annotated[T, Resource]`.

A resource field is never written to a checkpoint. When a checkpointed context is
restored (`cogent._context_state.restore`), its resource fields get new values from the
application's resource factory, or their field defaults. Put the marker at the top
level of the annotation: `Annotated[Database | None, Resource]`, not
`Annotated[Database, Resource] | None`.
"""

SpanAttribute: Final = _Marker("SpanAttribute")
"""Marks a context field as exported to telemetry: `tenant_id: Annotated[str, SpanAttribute]`.

With instrumentation on (`cogent.telemetry`), each agent execution's span gets the
attribute `cogent.context.<field name>` with the field's value: a `str`, `int`, `float` or
`bool` as it is, an enum as its value, a list or tuple of those as an array, `None` not at
all, any other scalar (a UUID, a datetime) as its `str()`. A mapping, a dataclass or a
pydantic model is refused (`UserError`): mark a scalar field instead. A secret-named field
(`cogent.context.is_secret_name`) is never exported, marked or not. Unmarked fields and
`metadata` are never exported. Put the marker at the top level of the annotation.
"""
