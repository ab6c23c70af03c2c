"""The `Resource` marker: a context field that is re-created, never checkpointed.

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

Type checkers see `db` as a plain `Database` (`Annotated` metadata changes nothing for
them), so the marker costs nothing in the code that uses the field. The marker is an
object, not a class: `Annotated[Database, Resource()]` is a type error for mypy and a
`TypeError` at run time.

Secret-named fields (see `cogent.context.is_secret_name`: `api_token`, `password`, ...)
are masked in `repr()` but, as state, they are checkpointed like any other input of a
run. Mark such a field a resource to keep it out of checkpoints and pass it again when
the context is restored.

This module imports nothing from cogent, so `cogent.context` can re-export the marker.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final, NoReturn, final

__all__ = ["Resource"]


@final
class _ResourceMarker:
    """The type of the `Resource` marker (one instance)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "Resource"

    def __reduce__(self) -> str:
        return "Resource"  # pickles (and deep-copies) as the module-level singleton

    if not TYPE_CHECKING:  # invisible to type checkers, so that `Resource()` is a type error

        def __call__(self, *args: Any, **kwargs: Any) -> NoReturn:
            raise TypeError(
                "Resource is a marker, not a class: write `Annotated[T, Resource]`, not `Annotated[T, Resource()]`."
            )


Resource: Final = _ResourceMarker()
"""Marks a context field as a resource: `name: Annotated[T, Resource]`.

A resource field is never written to a checkpoint. When a checkpointed context is
restored (`cogent._context_state.restore`), its resource fields get new values from the
application's resource factory, or their field defaults. Put the marker at the top
level of the annotation: `Annotated[Database | None, Resource]`, not
`Annotated[Database, Resource] | None`.
"""
