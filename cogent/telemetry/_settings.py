"""`InstrumentationSettings` (what `Agent(instrument=...)` takes) and `instrument_all()`."""

from __future__ import annotations

from importlib import metadata

from opentelemetry import trace
from opentelemetry.trace import TracerProvider

from .._run.hooks import Instrumentation, Observer, set_default_instrumentation
from ..exceptions import UserError
from ._observer import SpanObserver

__all__ = ["InstrumentationSettings", "instrument_all"]

SCOPE = "cogent"
"""The instrumentation scope of cogent's tracer."""


def _version() -> str | None:
    try:
        return metadata.version("cogent-context")
    except metadata.PackageNotFoundError:  # pragma: no cover - a checkout used without installing
        return None


class InstrumentationSettings(Instrumentation):
    """How runs are turned into OpenTelemetry spans: where they go and whether content is recorded.

    Pass it as `Agent(instrument=InstrumentationSettings(...))` or to `instrument_all()`;
    `instrument=True` is `InstrumentationSettings()`. The top-level agent's setting decides
    for its whole run tree (its subagents' own settings do not apply).

    Args:
        tracer_provider: Where spans go; by default the global provider (what
            `opentelemetry.trace.set_tracer_provider()`, `logfire.configure()` or your
            distribution installs), looked up when each span starts, so it may be set later.
        include_content: Also record what the model was sent and answered (instructions,
            messages, tool arguments and successful results), the GenAI conventions' opt-in
            attributes. Off by default: content can hold personal data the application never
            chose to export. Run context values are never content.

    Raises:
        UserError: If `tracer_provider` is not an OpenTelemetry `TracerProvider`, or
            `include_content` is not a bool.
    """

    __slots__ = ("_observer", "include_content", "tracer_provider")

    def __init__(self, *, tracer_provider: TracerProvider | None = None, include_content: bool = False) -> None:
        if tracer_provider is not None and not isinstance(tracer_provider, TracerProvider):
            raise UserError(
                f"InstrumentationSettings got tracer_provider={tracer_provider!r}; pass an OpenTelemetry "
                "TracerProvider (e.g. opentelemetry.sdk.trace.TracerProvider()) or None for the global one."
            )
        if not isinstance(include_content, bool):
            raise UserError(f"InstrumentationSettings got include_content={include_content!r}; pass True or False.")
        self.tracer_provider = tracer_provider
        """The provider spans go to (`None`: the global one)."""
        self.include_content = include_content
        """Whether message content is recorded."""
        provider = tracer_provider if tracer_provider is not None else trace.get_tracer_provider()
        self._observer = SpanObserver(provider.get_tracer(SCOPE, _version()), include_content)

    def __repr__(self) -> str:
        return (
            f"InstrumentationSettings(tracer_provider={self.tracer_provider!r}, "
            f"include_content={self.include_content!r})"
        )

    def observer(self) -> Observer:
        """Return the observer of the runs instrumented with these settings (one for all of them)."""
        return self._observer


def instrument_all(instrument: bool | InstrumentationSettings = True) -> None:
    """Instrument the runs of every agent created with `instrument=None` (the default).

    An agent's own `instrument=True`, `False` or settings still decide for its runs.

    Args:
        instrument: `True` for `InstrumentationSettings()`, settings of your own, or `False`
            to stop instrumenting those runs.

    Raises:
        UserError: If `instrument` is neither a bool nor `InstrumentationSettings`.
    """
    if isinstance(instrument, InstrumentationSettings):
        set_default_instrumentation(instrument)
    elif instrument is True:
        set_default_instrumentation(InstrumentationSettings())
    elif instrument is False:
        set_default_instrumentation(None)
    else:
        raise UserError(
            f"instrument_all() got {instrument!r}; pass True, False or cogent.telemetry.InstrumentationSettings(...)."
        )
