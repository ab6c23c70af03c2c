"""Command line of the retail example: `python -m examples.retail`.

Without options it replays the gold calls of all 114 tau2 retail tasks concurrently, each
through its own desk of replay models on its own in-memory SQLite database, checks every
call against `tasks.json` and `expected_outcomes.json` and every final database against
its hash, and prints a report with the trace of one task. `--task ID` replays one task and
prints its whole trace. `--model provider:name` lets a real model drive the desk on one
task instead (no verification: it prints the conversation). `--otel [FILE]` also exports
the replay's OpenTelemetry spans to FILE (one JSON span per line), checks from the file that
each task's span tree equals its trace, and prints the span count and one task's tree.

`--durable` replays the tasks as durable runs on DBOS instead (see `harness.durable`):
each task's database persists (SQLite files, or `--database-url` PostgreSQL), writes are
exactly-once, and `--crash-every N` kills the worker process after about every N-th step
(seeded by `--seed`) and restarts it until every run has finished; the same checks
apply, and the report says how many crashes the replay survived.

The exit code is 0 only if everything matched (with `--model`: if the run finished), 1
otherwise, and 2 for a usage error.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import TextIO

import anyio
import sqlalchemy as sa

from cogent import ToolApprovalItem, format_trace
from cogent.exceptions import UserError
from cogent.models import Model, infer_model

from ..desk import FRONT_DESK, OWNER, build_desk
from ..tools import WRITE_TOOLS
from .database import DatabaseTemplate, canonical_db, changed_records
from .replay import TaskReport, replay_tasks, run_task
from .tasks import TaskPlan, load_plans

__all__ = ["build_parser", "main"]


def build_parser(task_ids: Sequence[str]) -> argparse.ArgumentParser:
    """Return the parser of `python -m examples.retail` (add options here).

    Args:
        task_ids: The valid task ids, in order (for the help text).
    """
    parser = argparse.ArgumentParser(
        prog="python -m examples.retail",
        description="Replay the gold calls of the tau2 retail tasks through the cogent desk and verify them.",
    )
    parser.add_argument(
        "--task", metavar="ID", help=f"replay only this task ({task_ids[0]} to {task_ids[-1]}) and print its trace"
    )
    parser.add_argument("--durable", action="store_true", help="replay the tasks as durable runs on DBOS")
    parser.add_argument(
        "--crash-every",
        metavar="N",
        type=int,
        default=0,
        help="with --durable: SIGKILL the worker after about every N-th step, and restart it",
    )
    parser.add_argument("--seed", type=int, default=0, help="with --crash-every: seeds the kill points")
    parser.add_argument(
        "--database-url",
        metavar="URL",
        help="with --durable: an empty PostgreSQL database for the tasks' databases and DBOS (default: SQLite files)",
    )
    parser.add_argument(
        "--model",
        metavar="PROVIDER:NAME",
        help="drive the desk with a real model, e.g. openai:gpt-4o-mini, on --task (default 0); no verification",
    )
    parser.add_argument(
        "--otel",
        metavar="FILE",
        nargs="?",
        type=Path,
        const=Path(OTEL_FILE),
        help=f"export the replay's OpenTelemetry spans to FILE (default {OTEL_FILE}), one JSON span per line, and "
        "check each task's span tree against its trace (needs opentelemetry-sdk)",
    )
    return parser


OTEL_FILE = "retail-spans.jsonl"
"""Where `--otel` writes the spans by default (in the current directory)."""


class _Progress:
    """A one-line progress bar on a terminal (nothing when the output is not a TTY)."""

    def __init__(self, total: int, stream: TextIO) -> None:
        self.total, self.done, self.stream = total, 0, stream
        self.enabled = stream.isatty()

    def advance(self, report: TaskReport) -> None:
        self.done += 1
        if self.enabled:
            filled = 30 * self.done // self.total
            self.stream.write(f"\r[{'#' * filled}{'.' * (30 - filled)}] {self.done}/{self.total} tasks")
            self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\r" + " " * 60 + "\r")
            self.stream.flush()


def _sample(plans: Sequence[TaskPlan]) -> TaskPlan:
    """Return the first task whose calls involve the most agents of the desk."""
    return max(plans, key=lambda plan: len({OWNER[call.name] for call in plan.calls}))


def _print_checks(report: TaskReport, out: TextIO, *, only_problems: bool) -> None:
    for call in report.calls:
        if only_problems and call.matched:
            continue
        added = "" if call.expected.gold else " (identification added by the replay)"
        verdict = "ok      " if call.matched else "MISMATCH"
        print(f"    {verdict} [{call.expected.call_id}] {call.expected.name}{added}", file=out)
        for problem in call.problems:
            print(f"             {problem}", file=out)
    for record in report.unplanned:
        print(f"    MISMATCH [{record.call_id}] {record.name}: not in the plan ({record.agent} made it)", file=out)
    if report.error is not None:
        print(f"    the run failed: {report.error!r}", file=out)
    elif not report.db_matched:
        print(f"    final DB {report.final_db_sha256} != {report.plan.final_db_sha256}", file=out)


def _print_report(reports: Sequence[TaskReport], seconds: float, out: TextIO) -> bool:
    """Print the replay's numbers and every mismatch; return whether everything matched."""
    gold = sum(len(r.plan.gold_calls) for r in reports)
    added = [call for r in reports for call in r.identifications]
    tasks_ok = sum(r.matched for r in reports)
    requests = sum(r.usage.requests for r in reports)
    tool_calls = sum(r.usage.tool_calls for r in reports)
    print(f"tau2 retail: gold calls of {len(reports)} task(s) replayed through the desk, each on its own DB", file=out)
    print(f"  tasks matched    {tasks_ok}/{len(reports)}", file=out)
    print(f"  calls matched    {sum(r.gold_calls_matched for r in reports)}/{gold}", file=out)
    print(f"  final DB hashes  {sum(r.db_matched for r in reports)}/{len(reports)}", file=out)
    print(
        f"  identifications  {sum(c.matched for c in added)}/{len(added)} added where the gold list starts after "
        "authentication",
        file=out,
    )
    print(f"  approvals        {sum(len(r.approvals) for r in reports)} writes approved by the handler", file=out)
    print(f"  wall time        {seconds:.3f} s ({len(reports) / seconds:.1f} tasks/s)", file=out)
    print(f"  model requests   {requests}; tool calls and delegations {tool_calls}", file=out)
    for report in reports:
        if not report.matched:
            print(f"  task {report.plan.task_id} FAILED", file=out)
            _print_checks(report, out, only_problems=True)
    return tasks_ok == len(reports)


async def _replay(
    plans: Sequence[TaskPlan],
    sample: TaskPlan,
    databases: Callable[[], AbstractContextManager[sa.Engine]],
    *,
    width: int,
    out: TextIO,
    otel: Path | None = None,
) -> int:
    """Replay `plans` on `databases`, print the report and `sample`'s trace and checks; return the exit code.

    With `otel`, the spans are exported to that file, checked against the traces, and
    `sample`'s span tree is printed.
    """
    progress = _Progress(len(plans), out)
    started = time.perf_counter()
    if otel is not None:
        from .telemetry import exporting  # the OpenTelemetry SDK only when asked for

    with exporting(otel) if otel is not None else nullcontext():
        reports = await replay_tasks(plans, databases, on_done=progress.advance)
    seconds = time.perf_counter() - started
    progress.close()
    ok = _print_report(reports, seconds, out)
    report = reports[plans.index(sample)]
    if report.error is None:
        print(f"\ntrace of task {sample.task_id}:", file=out)
        print(format_trace(report.trace, width=width), file=out)
        print(f"\ncalls of task {sample.task_id}, checked against tasks.json and expected_outcomes.json:", file=out)
        _print_checks(report, out, only_problems=False)
    if otel is not None:
        ok = _print_export(otel, reports, report, out) and ok
    return 0 if ok else 1


def _print_export(path: Path, reports: Sequence[TaskReport], sample: TaskReport, out: TextIO) -> bool:
    """Check the exported spans against the traces, print the count and `sample`'s tree; return whether all match."""
    from .telemetry import check_export, read_spans, span_tree

    spans = read_spans(path)
    check = check_export(spans, reports)
    matched = len(check.spans_per_task) - len({p.split(":")[0] for p in check.problems if p.startswith("task ")})
    print(f"\nOpenTelemetry: {len(spans)} spans of {len(reports)} task(s) exported to {path}", file=out)
    print(f"  span trees equal to the traces  {matched}/{len(reports)}", file=out)
    for problem in check.problems:
        print(f"  MISMATCH {problem}", file=out)
    if sample.error is None and sample.plan.task_id in check.spans_per_task:
        count = check.spans_per_task[sample.plan.task_id]
        print(f"\nspan tree of task {sample.plan.task_id} ({count} spans):", file=out)
        print(span_tree(spans, str(sample.trace[0].task_id)), file=out)
    return not check.problems


async def _drive(model: Model, plan: TaskPlan, template: DatabaseTemplate, out: TextIO) -> int:
    """Let a real model run the desk on one task and print the conversation; return the exit code."""

    def confirm(item: ToolApprovalItem) -> None:
        print(
            f"  [approval] {item.agent_name} wants {item.tool_name} {item.arguments}: the customer says yes", file=out
        )

    print(f"customer: {plan.opening}", file=out)
    with template.fresh() as db:
        report = await run_task(build_desk(model), plan, db, deadline_seconds=300, on_approval=confirm)
        with db.connect() as conn:
            changed = changed_records(template.initial, canonical_db(conn))
    if report.error is None:
        print(f"\ntrace:\n{format_trace(report.trace, width=200)}", file=out)
        print(f"\n{FRONT_DESK}: {report.output}", file=out)
    else:
        print(f"\nthe run failed: {report.error!r}", file=out)
        return 1
    records = [f"{table} {key}" for table, found in changed.items() for key in found]
    print(f"\nchanged records: {', '.join(records) or 'none'}", file=out)
    same = "yes" if report.db_matched else "no"
    print(f"final database equals the gold outcome: {same} (informational, not verified)", file=out)
    print(f"gold calls made as in tasks.json: {report.gold_calls_matched}/{len(plan.gold_calls)}", file=out)
    return 0


def main(argv: Sequence[str] | None = None, out: TextIO = sys.stdout) -> int:
    """Run the command line.

    Args:
        argv: The arguments (default: `sys.argv[1:]`).
        out: Where the report goes.

    Returns:
        The exit code: 0 if everything matched (with `--model`: if the run finished),
        1 on a mismatch or a failed run, 2 on a usage error.
    """
    with DatabaseTemplate() as template:
        plans = load_plans(template.initial)
        ids = [plan.task_id for plan in plans]
        parser = build_parser(ids)
        args = parser.parse_args(argv)
        if args.task is not None and args.task not in ids:
            parser.error(f"argument --task: there is no task {args.task!r}; the task ids are {ids[0]} to {ids[-1]}")
        if args.durable or args.crash_every or args.database_url:
            if not args.durable or args.model is not None or args.otel is not None or args.crash_every < 0:
                parser.error("--crash-every and --database-url go with --durable, which replays (no --model or --otel)")
            chosen = [plans[ids.index(args.task)]] if args.task is not None else list(plans)
            return _durable(chosen, template, args.crash_every, args.seed, args.database_url, out)
        if args.model is None:
            if args.task is None:
                return anyio.run(
                    lambda: _replay(plans, _sample(plans), template.fresh, width=100, out=out, otel=args.otel)
                )
            one = plans[ids.index(args.task)]
            return anyio.run(lambda: _replay([one], one, template.fresh, width=100_000, out=out, otel=args.otel))
        if args.otel is not None:
            parser.error("argument --otel: the export is checked against the replay; leave out --model")
        try:
            model = _model(args.model)
        except UserError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        plan = plans[ids.index(args.task or "0")]
        return anyio.run(lambda: _drive(model, plan, template, out))


def _durable(
    plans: Sequence[TaskPlan],
    template: DatabaseTemplate,
    crash_every: int,
    seed: int,
    database_url: str | None,
    out: TextIO,
) -> int:
    """Replay `plans` as durable runs (crashing the worker when asked), print the report; return the exit code."""
    from .durable import replay_durably

    with tempfile.TemporaryDirectory(prefix="retail-durable-") as directory:
        outcome = replay_durably(
            plans, template, Path(directory), database_url=database_url, crash_every=crash_every, seed=seed
        )
    ok = _print_report(outcome.reports, outcome.seconds, out)
    writes = sum(crash == "write" for crash in outcome.crashes)
    succeeded = sum(
        1
        for report in outcome.reports
        for call in report.calls
        if call.expected.name in WRITE_TOOLS and call.output is not None and not call.output.startswith("Error: ")
    )
    once = outcome.writes_made == succeeded
    ok = ok and once
    print(f"  durable runs     {len(outcome.reports)} DBOS workflows, SQL databases on "
          f"{'PostgreSQL' if database_url else 'SQLite files'}", file=out)  # fmt: skip
    print(
        f"  crashes survived {len(outcome.crashes)} SIGKILLs of the worker ({writes} right after a write's commit, "
        f"{len(outcome.crashes) - writes} inside a model request)",
        file=out,
    )
    print(
        f"  exactly-once     {outcome.writes_made} writes recorded for {succeeded} successful write calls "
        f"({'each once' if once else 'MISMATCH'})",
        file=out,
    )
    sample = _sample(plans)
    report = outcome.reports[list(plans).index(sample)]
    if report.error is None:
        print(f"\ntrace of task {sample.task_id}:", file=out)
        print(format_trace(report.trace, width=100), file=out)
    return 0 if ok else 1


def _model(name: str) -> Model:
    """Return the model that `--model` names.

    Raises:
        UserError: If it cannot be used: an OpenAI or Anthropic model without its API key
            (`OPENAI_API_KEY`, `ANTHROPIC_API_KEY`), an unknown provider, or a provider whose
            extra is not installed.
    """
    for provider, key, base_url in (
        ("openai", "OPENAI_API_KEY", "OPENAI_BASE_URL"),
        ("anthropic", "ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL"),
    ):
        if name.startswith(f"{provider}:") and not os.environ.get(key):
            raise UserError(
                f"--model {name} needs an API key: set {key} (and {base_url} for another server speaking "
                "the same API), or leave out --model to replay the gold calls offline."
            )
    try:
        return infer_model(name)
    except (ImportError, UserError) as exc:
        raise UserError(f"--model {name} cannot be used: {exc}") from exc
