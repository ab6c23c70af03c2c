"""Fixtures for the telemetry tests: an SDK tracer provider whose spans land in memory."""

from __future__ import annotations

from collections.abc import Iterator
from importlib.util import find_spec

import pytest

if find_spec("opentelemetry.sdk") is None:  # the SDK (a dev dependency) is missing: nothing here can run
    collect_ignore_glob = ["test_*.py"]
else:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from cogent.telemetry import InstrumentationSettings, instrument_all

    from ._support import Spans

    @pytest.fixture
    def exporter() -> InMemorySpanExporter:
        """Where the test's spans go."""
        return InMemorySpanExporter()

    @pytest.fixture
    def provider(exporter: InMemorySpanExporter) -> TracerProvider:
        """A tracer provider of the test's own that exports each span as it ends."""
        tracer_provider = TracerProvider()
        tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
        return tracer_provider

    @pytest.fixture
    def settings(provider: TracerProvider) -> InstrumentationSettings:
        """Instrumentation into `provider`, without content."""
        return InstrumentationSettings(tracer_provider=provider)

    @pytest.fixture
    def spans(exporter: InMemorySpanExporter) -> Spans:
        """The finished spans, read when the test asks."""
        return Spans(exporter)

    @pytest.fixture(autouse=True)
    def no_global_instrumentation() -> Iterator[None]:
        """Every test starts and ends without `instrument_all()` in effect."""
        instrument_all(False)
        yield
        instrument_all(False)
