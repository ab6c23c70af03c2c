"""The benchmark groups and what they are made of: timings, figures, the registry.

A group (one module, e.g. `benchmarks/tool_calls.py`) defines `GROUP = Group(...)` and is
listed in `GROUP_MODULES`. It gives two functions:

- `timings(config)`: the `Timing`s pyperf measures, each a named time function. Timings
  with the same name in two groups are the same measurement and are run once, so a group
  can use another's figure as its floor (D uses B's run) without depending on it.
- `figures(times, config)`: the rows of the table, computed from the measured times. It
  runs in the main process only, after every timing, and may also *probe*: measure what
  is not a time (memory, a count, a correctness check) directly.

A group that needs an extra names its modules in `requires`; when one is missing, the
group is skipped (and says why) instead of failing. Its module must import the extra only
inside its functions, so that listing the groups works without it.
"""

from __future__ import annotations

import importlib
import importlib.util
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

__all__ = [
    "GROUP_MODULES",
    "Config",
    "Estimate",
    "Figure",
    "Group",
    "Skipped",
    "Times",
    "Timing",
    "load_groups",
    "select_groups",
]

GROUP_MODULES = (
    "benchmarks.tool_calls",
    "benchmarks.runs",
    "benchmarks.concurrency",
    "benchmarks.delegation",
    "benchmarks.interceptors",
    "benchmarks.cold_start",
    "benchmarks.durable",
    "benchmarks.telemetry",
)
"""The modules that define a group, in the order the groups run and are reported."""


@dataclass(frozen=True, kw_only=True)
class Config:
    """How the suite was asked to run; every group sees the same one."""

    quick: bool
    """Quick mode (CI): one in-process pyperf value per timing, fewer probe rounds."""
    backend: Literal["asyncio", "trio"]
    """The anyio backend every run executes on."""


@dataclass(frozen=True, kw_only=True)
class Timing:
    """One pyperf benchmark: a named function that times `loops` operations."""

    name: str
    """The pyperf benchmark name, e.g. `A.run.async.101`. The same name in two groups must
    mean the same measurement: it is run once."""
    time: Callable[[int], float]
    """pyperf's time function: `time(loops)` does `loops` operations (setup excluded) and
    returns the seconds they took; pyperf divides by `loops`."""


@dataclass(frozen=True)
class Estimate:
    """A measurement: the median of pyperf's values and their median absolute deviation.

    The median, not the mean: on a shared machine another job sometimes takes a core for
    a second, and the mean follows such outliers. Arithmetic treats the operands as
    independent (each timing runs in its own worker processes) and combines their
    deviations in quadrature: an indication of the spread, not a confidence interval.
    """

    median: float
    """The median (seconds per operation, or the unit the arithmetic made)."""
    mad: float | None
    """The median absolute deviation of the values, or `None` with fewer than two values."""

    def __sub__(self, other: Estimate) -> Estimate:
        return Estimate(self.median - other.median, _combined(self.mad, other.mad))

    def __mul__(self, factor: float) -> Estimate:
        return Estimate(self.median * factor, None if self.mad is None else self.mad * abs(factor))

    def __truediv__(self, divisor: float) -> Estimate:
        return self * (1 / divisor)


def _combined(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else math.hypot(a, b)


class Times:
    """The measured timings, by name: seconds per operation."""

    def __init__(self, benchmarks: Mapping[str, Any]) -> None:
        """Wrap pyperf's results.

        Args:
            benchmarks: `pyperf.Benchmark`s by timing name.
        """
        self._benchmarks = dict(benchmarks)

    def __getitem__(self, name: str) -> Estimate:
        """Return the median seconds per operation of timing `name`, with its deviation.

        Raises:
            KeyError: If no timing of that name was measured (a group asked for a timing
                it does not declare in `timings()`).
        """
        if name not in self._benchmarks:
            raise KeyError(
                f"Timing {name!r} was not measured; declare it in the group's timings() to use it in figures()."
            )
        bench = self._benchmarks[name]
        mad = bench.median_abs_dev() if bench.get_nvalue() >= 2 else None
        return Estimate(bench.median(), mad)


@dataclass(kw_only=True)
class Figure:
    """One row of the table."""

    key: str
    """A stable identifier, e.g. `A.async`: the group's key, a dot, a name."""
    label: str
    """What was measured."""
    value: float
    """The measurement, in `unit`."""
    unit: str
    """`us` (microseconds per operation), `runs/s`, `s`, `ms`, `KiB`, `count` or `x`."""
    mad: float | None = None
    """The median absolute deviation of `value` (combined through differences), when known."""
    floor: float | None = None
    """The floor's measurement in the same unit, when the figure has one."""
    target: str | None = None
    """The target, as text, when the issue sets one."""
    met: bool | None = None
    """Whether the target is met (`None` when there is no target)."""
    note: str | None = None
    """What exactly was measured and how."""

    @property
    def ratio(self) -> float | None:
        """How many times the floor's cost the figure's cost is (for `runs/s`, the inverse)."""
        if self.floor is None or self.floor <= 0 or self.value <= 0:
            return None
        return self.floor / self.value if self.unit == "runs/s" else self.value / self.floor


@dataclass(frozen=True, kw_only=True)
class Group:
    """A selectable group of figures (`--only KEY`), defined by one module."""

    key: str
    """The group's key on the command line and in figure keys, e.g. `A`."""
    title: str
    """What the group measures, in a few words."""
    timings: Callable[[Config], Sequence[Timing]]
    """The timings pyperf runs for this group (in every process, so keep it cheap)."""
    figures: Callable[[Times, Config], Sequence[Figure]]
    """The group's rows from the measured times; may probe (main process only)."""
    requires: tuple[str, ...] = ()
    """Modules the group needs beyond cogent's own dependencies (an extra's)."""
    install: str | None = None
    """How to get them, for the skip message, e.g. `pip install "cogent-context[dbos]"`."""

    def missing(self) -> list[str]:
        """Return the modules of `requires` that cannot be imported here."""
        return [name for name in self.requires if importlib.util.find_spec(name) is None]


@dataclass(frozen=True, kw_only=True)
class Skipped:
    """A group that was selected but cannot run here."""

    key: str
    """The group's key."""
    reason: str
    """Why, and what to install."""


def load_groups(modules: Sequence[str] = GROUP_MODULES) -> list[Group]:
    """Import each group module and return its `GROUP`, in order.

    Args:
        modules: Dotted module names, each defining `GROUP`.

    Returns:
        The groups.

    Raises:
        TypeError: If a module's `GROUP` is not a `Group`.
        ValueError: If two groups have the same key.
    """
    groups: list[Group] = []
    for name in modules:
        group = importlib.import_module(name).GROUP
        if not isinstance(group, Group):
            raise TypeError(f"{name}.GROUP is {group!r}; define it as benchmarks.registry.Group(...).")
        if any(g.key.lower() == group.key.lower() for g in groups):
            raise ValueError(f"Two benchmark groups have the key {group.key!r}; give {name}.GROUP another key.")
        groups.append(group)
    return groups


def select_groups(groups: Sequence[Group], only: str | None) -> tuple[list[Group], list[Skipped]]:
    """Return the groups to run and the selected groups skipped for a missing extra.

    Args:
        groups: Every registered group.
        only: Comma-separated group keys (case-insensitive), e.g. `"A,E"`; `None` selects all.

    Returns:
        The groups to run, in registry order, and the skipped ones with their reasons.

    Raises:
        ValueError: If `only` names no group or a key no group has.
    """
    selected = list(groups)
    if only is not None:
        keys = [k.strip().lower() for k in only.split(",") if k.strip()]
        known = {g.key.lower() for g in groups}
        unknown = [k for k in keys if k not in known]
        if not keys or unknown:
            raise ValueError(
                f"--only {only!r} names {'no group' if not keys else 'unknown groups ' + ', '.join(unknown)}; "
                f"use comma-separated keys among {', '.join(g.key for g in groups)}, e.g. --only A,E."
            )
        selected = [g for g in groups if g.key.lower() in keys]
    runnable: list[Group] = []
    skipped: list[Skipped] = []
    for group in selected:
        missing = group.missing()
        if missing:
            how = f"; {group.install}" if group.install else ""
            skipped.append(Skipped(key=group.key, reason=f"needs {', '.join(missing)}{how}"))
        else:
            runnable.append(group)
    return runnable, skipped
