"""Mutation testing of cogent's core: change the source one small step at a time, see if a test fails.

Run from the repository root (slow, never in CI; see docs/contributing.md "Mutation testing"):

    python tools/mutation.py                          # every module of TARGETS
    python tools/mutation.py cogent/context.py        # one module
    python tools/mutation.py cogent/_run/tool_calls.py --functions _approve,count_failure
    python tools/mutation.py --survivors-only         # rerun only the last report's survivors
    python tools/mutation.py cogent/tools.py --list   # show the mutants, run nothing

Each mutant changes one construct of the module (the operators are listed in `_Finder`). It is
applied to a copy of the repository in a temporary directory (one per worker; the checkout is
never written), and the tests that execute the mutated lines run against it on asyncio only
(`-x -q -p no:randomly -k "not trio" -m "not slow"`; `--trio` runs the trio variants too). A
test failure, an error or a timeout kills the mutant; a mutant no test notices survives.
Mutants on lines no selected test executes survive without running ("no_coverage").

Which tests execute which lines comes from a baseline run per module, traced with
`sys.settrace` (this file is also the pytest plugin that traces); the baseline also times the
tests for the timeouts. It is cached in `.mutation-cache/` until a file under `cogent/`,
`tests/` or `tools/` changes.

The report goes to `mutation-report/report.json` and `mutation-report/report.md`. Mutants that
cannot change behaviour (equivalent mutants) are listed, each with its reason, in
`tools/mutation_equivalents.toml` and excluded from the score.

Standard library only.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / ".mutation-cache"
EQUIVALENTS = ROOT / "tools" / "mutation_equivalents.toml"

# Which test files exercise each module. The baseline narrows this down, per mutated line, to the
# tests that execute it.
_CORE_TESTS = ["tests/test_tools.py", "tests/test_context.py", "tests/test_helper_contexts.py"]
_RUN_TESTS = [
    "tests/test_run.py",
    "tests/test_approvals.py",
    "tests/test_subagents.py",
    "tests/test_interceptors.py",
    "tests/test_usage_and_output.py",
    "tests/test_deadlines.py",
    "tests/test_streaming.py",
]
TARGETS: dict[str, list[str]] = {
    "cogent/context.py": [
        *_CORE_TESTS,
        "tests/test_approvals.py",
        "tests/test_context_state.py",
        "tests/test_subagents.py",
        "tests/test_deadlines.py",
        "tests/reliability/test_secrecy.py",
    ],
    "cogent/_signature.py": [
        *_CORE_TESTS,
        "tests/test_interceptors.py",
        "tests/test_approvals.py",
        "tests/test_run.py",
    ],
    "cogent/tools.py": [
        *_CORE_TESTS,
        "tests/test_run.py",
        "tests/test_subagents.py",
        "tests/test_deadlines.py",
        "tests/reliability/test_attacks.py",  # nested run_sync calls in sync tools (NestedRuns: run with --trio)
    ],
    "cogent/_run/approvals.py": [*_RUN_TESTS, "tests/reliability/test_bad_input.py"],
    "cogent/_run/history.py": [*_RUN_TESTS, "tests/test_messages.py", "tests/reliability/test_bad_input.py"],
    "cogent/_run/context_rules.py": [*_CORE_TESTS, *_RUN_TESTS],
    "cogent/_run/tool_calls.py": [
        *_CORE_TESTS,
        *_RUN_TESTS,
        "tests/test_builtin_interceptors.py",
        "tests/reliability/test_faults.py",
        "tests/test_regressions_hardening.py",
        "tests/test_regressions_redesign.py",
        "tests/reliability/test_bad_input.py",
    ],
}
PYTEST_ARGS = ["-x", "-q", "-p", "no:randomly", "-p", "no:cacheprovider", "-m", "not slow", "-k", "not trio"]
COLLECTION = "<collection>"  # what the baseline calls lines executed outside any test (imports)


# --- mutants -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Mutant:
    """One change to one module's source."""

    module: str
    """The module's path, relative to the repository root."""
    function: str
    """The qualified name of the enclosing function or class (`<module>` at module level)."""
    operator: str
    """What kind of change it is (see `_Finder`)."""
    start: int
    """Byte offset in the source where the replaced text starts."""
    end: int
    """Byte offset where it ends."""
    replacement: str
    """The text that replaces it."""
    line: int
    """The first line of the replaced text (1-based)."""
    end_line: int
    """Its last line."""
    import_time: bool
    """Whether the code runs when the module is imported (module level, class bodies, defaults)."""
    original_line: str = ""
    """The first source line, stripped, as written."""
    mutated_line: str = ""
    """That line, stripped, after the change."""
    key: str = ""
    """A name of the mutant that survives edits elsewhere in the module (for the equivalents file)."""

    def apply(self, source: bytes) -> bytes:
        """Return `source` with this mutant's change."""
        return source[: self.start] + self.replacement.encode() + source[self.end :]


_COMPARE_FLIPS = {
    ast.Lt: ("<", "<="),
    ast.LtE: ("<=", "<"),
    ast.Gt: (">", ">="),
    ast.GtE: (">=", ">"),
    ast.Eq: ("==", "!="),
    ast.NotEq: ("!=", "=="),
    ast.Is: ("is", "is not"),
    ast.IsNot: ("is not", "is"),
    ast.In: ("in", "not in"),
    ast.NotIn: ("not in", "in"),
}
_ORDERINGS = (ast.Lt, ast.LtE, ast.Gt, ast.GtE)


class _Finder(ast.NodeVisitor):
    """Walk a module and record every mutant of it, as (node span, operator, replacement text).

    Operators:
        compare: `<` <-> `<=`, `>` <-> `>=`, `==` <-> `!=`, `is` <-> `is not`, `in` <-> `not in`.
        negate: the condition of an `if`, `elif`, `while`, conditional expression or comprehension
            filter becomes `not (...)` (`assert` statements are not mutated).
        boolop: `and` <-> `or`.
        raise: a `raise` statement becomes `pass`.
        call: a statement that is only a call (or an awaited call) becomes `pass`.
        constant: `True` <-> `False`; a number `n` becomes `n + 1` and `n - 1`.
        default: a parameter's default value (other than `None` or a bool) becomes `None`.
        return: `return <value>` becomes `return None`.

    Not mutated: strings, annotations, docstrings, `assert` statements and the body of
    `if TYPE_CHECKING:`.
    """

    def __init__(self, source: bytes) -> None:
        self.source = source
        self.line_starts = [0]
        for line in source.splitlines(keepends=True):
            self.line_starts.append(self.line_starts[-1] + len(line))
        self.scope: list[str] = []
        self.depth = 0  # how many function bodies enclose the current node
        self.found: list[tuple[int, int, str, str, int, int, str, bool]] = []

    # offsets and text
    def offset(self, line: int, col: int) -> int:
        return self.line_starts[line - 1] + col

    def span(self, node: ast.AST) -> tuple[int, int]:
        return self.offset(node.lineno, node.col_offset), self.offset(node.end_lineno, node.end_col_offset)  # type: ignore[attr-defined]

    def text(self, start: int, end: int) -> str:
        return self.source[start:end].decode()

    def add(self, node: ast.AST, operator: str, replacement: str) -> None:
        start, end = self.span(node)
        function = ".".join(self.scope) or "<module>"
        self.found.append(
            (start, end, operator, replacement, node.lineno, node.end_lineno, function, self.depth == 0)  # type: ignore[attr-defined]
        )

    # scopes
    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        if any(isinstance(d, ast.Name) and d.id == "overload" for d in node.decorator_list):
            return  # a typing stub: replaced by the implementation at import
        self.scope.append(node.name)  # its decorators and defaults run at import, but belong to it
        for decorator in node.decorator_list:
            self.visit(decorator)
        for default in [*node.args.defaults, *node.args.kw_defaults]:
            if default is None:
                continue
            if not (isinstance(default, ast.Constant) and (default.value is None or isinstance(default.value, bool))):
                self.add(default, "default", "None")
            self.visit(default)
        self.depth += 1
        for statement in _without_docstring(node.body):
            self.visit(statement)
        self.depth -= 1
        self.scope.pop()

    visit_AsyncFunctionDef = visit_FunctionDef  # noqa: N815 - ast.NodeVisitor's name

    def visit_Lambda(self, node: ast.Lambda) -> None:
        self.depth += 1
        self.visit(node.body)
        self.depth -= 1

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self.scope.append(node.name)
        for decorator in node.decorator_list:
            self.visit(decorator)
        for statement in _without_docstring(node.body):
            self.visit(statement)
        self.scope.pop()

    # what is never mutated
    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        if node.value is not None:
            self.visit(node.value)

    def visit_Assert(self, node: ast.Assert) -> None:
        return

    def visit_JoinedStr(self, node: ast.JoinedStr) -> None:
        return  # f-strings: message text

    # operators
    def visit_If(self, node: ast.If) -> None:
        if isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            for statement in node.orelse:
                self.visit(statement)
            return
        self.negate(node.test)
        self.generic_visit(node)

    def visit_While(self, node: ast.While) -> None:
        self.negate(node.test)
        self.generic_visit(node)

    def visit_IfExp(self, node: ast.IfExp) -> None:
        self.negate(node.test)
        self.generic_visit(node)

    def visit_comprehension(self, node: ast.comprehension) -> None:
        for condition in node.ifs:
            self.negate(condition)
        self.generic_visit(node)

    def negate(self, test: ast.expr) -> None:
        if isinstance(test, ast.Compare) and len(test.ops) == 1 and not isinstance(test.ops[0], _ORDERINGS):
            return  # `not (a == b)` is the compare mutant `a != b` again
        self.add(test, "negate", f"not ({self.text(*self.span(test))})")

    def visit_Compare(self, node: ast.Compare) -> None:
        start, end = self.span(node)
        operands = [node.left, *node.comparators]
        for i, op in enumerate(node.ops):
            old, new = _COMPARE_FLIPS[type(op)]
            gap_start, gap_end = self.span(operands[i])[1], self.span(operands[i + 1])[0]
            gap = self.text(gap_start, gap_end)
            pattern = r"\b" + r"\s+".join(old.split()) + r"\b" if old[0].isalpha() else re.escape(old)
            replaced = re.sub(pattern, new, gap, count=1)
            replacement = self.text(start, gap_start) + replaced + self.text(gap_end, end)
            self.add(node, "compare", replacement)
        self.generic_visit(node)

    def visit_BoolOp(self, node: ast.BoolOp) -> None:
        start, end = self.span(node)
        old, new = ("and", "or") if isinstance(node.op, ast.And) else ("or", "and")
        pieces, position = [], start
        for left, right in zip(node.values, node.values[1:], strict=False):
            gap_start, gap_end = self.span(left)[1], self.span(right)[0]
            gap = re.sub(rf"\b{old}\b", new, self.text(gap_start, gap_end), count=1)
            pieces += [self.text(position, gap_start), gap]
            position = gap_end
        pieces.append(self.text(position, end))
        self.add(node, "boolop", "".join(pieces))
        self.generic_visit(node)

    def visit_Raise(self, node: ast.Raise) -> None:
        self.add(node, "raise", "pass")

    def visit_Expr(self, node: ast.Expr) -> None:
        value = node.value.value if isinstance(node.value, ast.Await) else node.value
        if isinstance(value, ast.Call):
            self.add(node, "call", "pass")
        self.generic_visit(node)

    def visit_Return(self, node: ast.Return) -> None:
        if node.value is not None and not (isinstance(node.value, ast.Constant) and node.value.value is None):
            self.add(node, "return", "return None")
        self.generic_visit(node)

    def visit_Constant(self, node: ast.Constant) -> None:
        value = node.value
        if isinstance(value, bool):
            self.add(node, "constant", repr(not value))
        elif isinstance(value, int | float):
            self.add(node, "constant", repr(value + 1))
            self.add(node, "constant", repr(value - 1))


def _without_docstring(body: list[ast.stmt]) -> list[ast.stmt]:
    first = body[0] if body else None
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
        return body[1:]
    return body


def find_mutants(module: str, functions: set[str] | None = None) -> list[Mutant]:
    """Return every mutant of `module` (a path relative to the root), in source order.

    Args:
        module: The module's path, e.g. "cogent/context.py".
        functions: Only mutants inside these functions or classes (qualified names, e.g.
            "RunContext.approve_tool" or "RunContext"); all when `None`.
    """
    source = (ROOT / module).read_bytes()
    finder = _Finder(source)
    finder.visit(ast.parse(source))
    lines = source.decode().splitlines()
    mutants: list[Mutant] = []
    seen: dict[str, int] = defaultdict(int)
    for start, end, operator, replacement, line, end_line, function, import_time in sorted(finder.found):
        if functions is not None and not any(function == f or function.startswith(f + ".") for f in functions):
            continue
        mutated = source[:start] + replacement.encode() + source[end:]
        mutated_text = mutated.decode().splitlines()
        original_line = lines[line - 1].strip()
        mutated_line = mutated_text[line - 1].strip() if line - 1 < len(mutated_text) else ""
        base = f"{module}|{function}|{operator}|{original_line}|{mutated_line}"
        seen[base] += 1
        mutants.append(
            Mutant(
                module=module,
                function=function,
                operator=operator,
                start=start,
                end=end,
                replacement=replacement,
                line=line,
                end_line=end_line,
                import_time=import_time,
                original_line=original_line,
                mutated_line=mutated_line,
                key=f"{base}|{seen[base]}",
            )
        )
    for m in mutants:
        compile(m.apply(source), m.module, "exec")  # a mutant must be valid Python, or this script is wrong
    return mutants


# --- the baseline: which tests execute which lines, and how long they take -----------------------------


class CoveragePlugin:
    """pytest plugin (loaded with `-p mutation` in the baseline run): records, per test, the lines of
    the target files it executes, and its duration."""

    def __init__(self, files: list[str], out: str) -> None:
        self.files = {str(Path(f).resolve()) for f in files}
        self.out = out
        self.current = COLLECTION
        self.lines: dict[str, dict[int, set[str]]] = {f: defaultdict(set) for f in self.files}
        self.durations: dict[str, float] = {}
        self.started = 0.0
        sys.settrace(self._call)
        threading.settrace(self._call)

    def _call(self, frame: Any, event: str, arg: Any) -> Any:
        if frame.f_code.co_filename in self.files:
            return self._line
        return None

    def _line(self, frame: Any, event: str, arg: Any) -> Any:
        if event == "line":
            self.lines[frame.f_code.co_filename][frame.f_lineno].add(self.current)
        return self._line

    def pytest_runtest_logstart(self, nodeid: str, location: Any) -> None:
        self.current = nodeid
        self.started = time.perf_counter()

    def pytest_runtest_logfinish(self, nodeid: str, location: Any) -> None:
        self.durations[nodeid] = time.perf_counter() - self.started
        self.current = COLLECTION

    def pytest_unconfigure(self, config: Any) -> None:
        sys.settrace(None)
        threading.settrace(None)
        lines = {f: {str(n): sorted(tests) for n, tests in by_line.items()} for f, by_line in self.lines.items()}
        Path(self.out).write_text(json.dumps({"lines": lines, "durations": self.durations}))


# Loaded with `-p mutation`, this module is imported before the conftest files (which import cogent),
# so tracing starts here: the lines cogent runs while it is imported count as executed at import.
_TRACE_FILES, _TRACE_OUT = os.environ.get("MUTATION_TRACE_FILES"), os.environ.get("MUTATION_TRACE_OUT")
_COVERAGE = CoveragePlugin(_TRACE_FILES.split(os.pathsep), _TRACE_OUT) if _TRACE_FILES and _TRACE_OUT else None


def pytest_configure(config: Any) -> None:
    """The plugin hook: record per test when the baseline asked for tracing."""
    if _COVERAGE is not None:
        config.pluginmanager.register(_COVERAGE, "mutation-coverage")


@dataclass
class Baseline:
    """What the unmutated tests of one module do."""

    lines: dict[int, list[str]]
    """Per line of the module: the tests that execute it (`<collection>`: executed at import)."""
    durations: dict[str, float]
    """Per test: its duration under tracing, in seconds."""
    startup: float
    """Seconds pytest takes before and after the tests (interpreter, imports, collection)."""

    def tests_for(self, mutant: Mutant) -> list[str] | None:
        """The tests to run against `mutant`: `None` for all of the module's, `[]` for none."""
        covering: set[str] = set()
        for line in range(mutant.line, mutant.end_line + 1):
            covering.update(self.lines.get(line, ()))
        if mutant.import_time or COLLECTION in covering:
            return None
        return [t for t in self.durations if t in covering]  # in the order pytest ran them

    def timeout(self, tests: list[str] | None) -> float:
        """Seconds a mutant's test run may take: generous, since a timeout counts as killed."""
        selected = self.durations.values() if tests is None else [self.durations[t] for t in tests]
        return 2 * self.startup + 3 * sum(selected) + 20


def _fingerprint(module: str, tests: list[str], copy: Path) -> str:
    digest = hashlib.sha256(f"{module}|{tests}|{PYTEST_ARGS}|{sys.version}".encode())
    for folder in ("cogent", "tests", "tools"):
        for path in sorted((copy / folder).rglob("*.py")):
            digest.update(str(path.relative_to(copy)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def baseline(module: str, tests: list[str], workdir: Path, refresh: bool) -> Baseline:
    """Return the cached baseline of `module`, or run the tests traced to make it.

    Raises:
        SystemExit: If the unmutated tests fail (mutation testing needs a green suite).
    """
    fingerprint = _fingerprint(module, tests, workdir)
    cached = CACHE / f"baseline-{module.replace('/', '_')}.json"
    if not refresh and cached.exists():
        data = json.loads(cached.read_text())
        if data["fingerprint"] == fingerprint:
            return Baseline({int(k): v for k, v in data["lines"].items()}, data["durations"], data["startup"])
    print(f"baseline: running {len(tests)} test files traced for {module} ...", flush=True)
    out = workdir / "trace.json"
    env = {
        **os.environ,
        "MUTATION_TRACE_FILES": str(workdir / module),
        "MUTATION_TRACE_OUT": str(out),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(workdir / "tools"), os.environ.get("PYTHONPATH")])),
    }
    started = time.perf_counter()
    cmd = [sys.executable, "-m", "pytest", *PYTEST_ARGS, "-p", "mutation", *tests]
    done = subprocess.run(cmd, cwd=workdir, env=env, capture_output=True, text=True, check=False)  # noqa: S603
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"The unmutated tests of {module} fail; fix them first.\n{done.stdout[-4000:]}{done.stderr[-2000:]}")
    data = json.loads(out.read_text())
    lines = data["lines"][str((workdir / module).resolve())]
    startup = max(elapsed - sum(data["durations"].values()), 1.0)
    result = Baseline({int(k): v for k, v in lines.items()}, data["durations"], startup)
    CACHE.mkdir(exist_ok=True)
    payload = {"fingerprint": fingerprint, "lines": lines, "durations": result.durations, "startup": result.startup}
    cached.write_text(json.dumps(payload))
    print(f"baseline: {len(result.durations)} tests, {elapsed:.0f} s traced", flush=True)
    return result


# --- running mutants -----------------------------------------------------------------------------


@dataclass
class Result:
    """What happened to one mutant."""

    mutant: Mutant
    status: str
    """killed, timeout, survived, no_coverage, equivalent, or error (this script's or pytest's usage error)."""
    seconds: float = 0.0
    """How long its test run took."""
    tests_run: int = 0
    """How many tests were selected for it (0: all of the module's files)."""
    killed_by: str = ""
    """The first failing test (from pytest's summary)."""
    reason: str = ""
    """For an equivalent mutant: why it cannot change behaviour."""
    detail: str = field(default="", repr=False)
    """The end of pytest's output, for errors."""


class Worker:
    """A copy of the repository in a temporary directory, where mutants are applied one at a time."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="cogent-mutation-"))
        ignore = shutil.ignore_patterns(
            ".git", "__pycache__", ".mypy_cache", ".ruff_cache", ".pytest_cache", ".hypothesis",
            ".mutation-cache", "mutation-report", "site", "results", "*.egg-info",
        )  # fmt: skip
        shutil.copytree(ROOT, self.dir, ignore=ignore, dirs_exist_ok=True)

    def close(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)

    def run(self, mutant: Mutant, tests: list[str], timeout: float) -> tuple[str, float, str, str]:
        """Apply `mutant`, run `tests`, restore the module; return (status, seconds, killed_by, output tail)."""
        path = self.dir / mutant.module
        original = path.read_bytes()
        path.write_bytes(mutant.apply(original))
        # The bytecode cache validates by mtime (1 s resolution) and size: drop it, or a mutant of the
        # same size written within a second of the previous one could run the previous one's code.
        Path(_cache_from_source(path)).unlink(missing_ok=True)
        cmd = [sys.executable, "-m", "pytest", *PYTEST_ARGS, *tests]
        started = time.perf_counter()
        try:
            process = subprocess.Popen(  # noqa: S603
                cmd, cwd=self.dir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
            )
            try:
                output, _ = process.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.communicate()
                return "timeout", time.perf_counter() - started, "", ""
        finally:
            path.write_bytes(original)
            Path(_cache_from_source(path)).unlink(missing_ok=True)
        seconds = time.perf_counter() - started
        failed = re.search(r"^(?:FAILED|ERROR) (\S+)", output, re.MULTILINE)
        if process.returncode == 0:
            return "survived", seconds, "", ""
        if process.returncode in (1, 2, 3):  # tests failed, interrupted (e.g. import error), internal error
            return "killed", seconds, failed.group(1) if failed else f"exit code {process.returncode}", ""
        if "ImportError while loading conftest" in output:  # the mutant breaks `import cogent`
            return "killed", seconds, "import cogent", ""
        return "error", seconds, "", output[-3000:]


def _cache_from_source(path: Path) -> str:
    import importlib.util

    return importlib.util.cache_from_source(str(path))


def load_equivalents() -> dict[tuple[str, str, str, str, str], str]:
    """Return the listed equivalent mutants: (module, function, operator, original, mutated) -> reason."""
    if not EQUIVALENTS.exists():
        return {}
    entries = tomllib.loads(EQUIVALENTS.read_text()).get("equivalent", [])
    return {(e["module"], e["function"], e["operator"], e["original"], e["mutated"]): e["reason"] for e in entries}


def run_module(
    module: str,
    tests: list[str],
    mutants: list[Mutant],
    workers: list[Worker],
    refresh: bool,
    previous: dict[str, Result],
) -> list[Result]:
    """Run every mutant of `module` (the ones in `previous` that were killed are not run again)."""
    base = baseline(module, tests, workers[0].dir, refresh)
    equivalents = load_equivalents()
    results: dict[int, Result] = {}
    todo: queue.Queue[tuple[int, Mutant]] = queue.Queue()
    for i, m in enumerate(mutants):
        reason = equivalents.get((m.module, m.function, m.operator, m.original_line, m.mutated_line))
        before = previous.get(m.key)
        if reason is not None:
            results[i] = Result(m, "equivalent", reason=reason)
        elif before is not None and before.status in ("killed", "timeout"):
            results[i] = Result(m, before.status, before.seconds, before.tests_run, before.killed_by)
        elif base.tests_for(m) == []:
            results[i] = Result(m, "no_coverage")
        else:
            todo.put((i, m))
    total, lock = todo.qsize(), threading.Lock()
    print(f"{module}: {len(mutants)} mutants, {total} to run", flush=True)

    def work(worker: Worker) -> None:
        while True:
            try:
                i, m = todo.get_nowait()
            except queue.Empty:
                return
            selected = base.tests_for(m)
            status, seconds, killed_by, detail = worker.run(m, selected or tests, base.timeout(selected))
            with lock:
                results[i] = Result(m, status, seconds, len(selected or ()), killed_by, detail=detail)
                done = total - todo.qsize()
                where = f"{m.module}:{m.line} {m.operator}"
                print(f"[{done}/{total}] {status:9} {where}: {m.mutated_line} ({seconds:.1f} s)", flush=True)

    with ThreadPoolExecutor(len(workers)) as pool:
        list(pool.map(work, workers))
    return [results[i] for i in range(len(mutants))]


# --- the report --------------------------------------------------------------------------------------


KILLED = ("killed", "timeout")
SURVIVED = ("survived", "no_coverage")


def score(results: list[Result]) -> tuple[int, int, float]:
    """Return (killed, counted, percent): equivalent mutants and errors are not counted."""
    killed = sum(r.status in KILLED for r in results)
    counted = sum(r.status in KILLED + SURVIVED for r in results)
    return killed, counted, 100.0 * killed / counted if counted else 100.0


def write_report(by_module: dict[str, list[Result]], seconds: float, folder: Path) -> None:
    """Write `folder`/report.json (every mutant) and report.md (scores, survivors, equivalents)."""
    folder.mkdir(exist_ok=True)
    data = {
        module: {
            "score": score(results)[2],
            "mutants": [{**{k: v for k, v in asdict(r).items() if k != "mutant"}, **asdict(r.mutant)} for r in results],
        }
        for module, results in by_module.items()
    }
    (folder / "report.json").write_text(json.dumps(data, indent=1))
    md = [f"# Mutation testing report\n\nTotal time: {seconds / 60:.1f} min.\n"]
    md += ["| module | killed | counted | score |", "|---|---|---|---|"]
    for module, results in by_module.items():
        killed, counted, percent = score(results)
        md.append(f"| {module} | {killed} | {counted} | {percent:.1f} % |")
    for module, results in by_module.items():
        md.append(f"\n## {module}\n")
        counts = {s: sum(r.status == s for r in results) for s in dict.fromkeys(r.status for r in results)}
        md.append(", ".join(f"{n} {s}" for s, n in counts.items()) + ".\n")
        for title, statuses in (("Survivors", SURVIVED), ("Errors", ("error",)), ("Equivalent", ("equivalent",))):
            chosen = [r for r in results if r.status in statuses]
            if not chosen:
                continue
            md.append(f"### {title}\n")
            for r in chosen:
                m = r.mutant
                note = f" — {r.reason}" if r.reason else (" (no test executes it)" if r.status == "no_coverage" else "")
                change = f"`{m.original_line}` → `{m.mutated_line}`"
                md.append(f"- `{m.module}:{m.line}` `{m.function}` {m.operator}: {change}{note}")
            md.append("")
    (folder / "report.md").write_text("\n".join(md) + "\n")


def _previous_results(folder: Path) -> dict[str, Result]:
    path = folder / "report.json"
    if not path.exists():
        sys.exit(f"--survivors-only needs an earlier report ({path}); run without it first.")
    found: dict[str, Result] = {}
    for module in json.loads(path.read_text()).values():
        for entry in module["mutants"]:
            mutant = Mutant(**{k: entry[k] for k in Mutant.__dataclass_fields__})
            status, seconds, tests_run, killed_by = (entry[k] for k in ("status", "seconds", "tests_run", "killed_by"))
            found[mutant.key] = Result(mutant, status, seconds, tests_run, killed_by)
    return found


def main(argv: list[str] | None = None) -> int:
    """Parse the command line, run the mutants, write the report; exit 0 (the score is in the report)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("modules", nargs="*", help="modules to mutate (default: every module of TARGETS)")
    parser.add_argument("--functions", help="comma-separated qualified names: mutate only inside these")
    parser.add_argument("--tests", nargs="+", help="test files to run instead of the module's in TARGETS")
    parser.add_argument("--workers", type=int, default=1, help="parallel test runs (default 1: the machine is shared)")
    parser.add_argument("--survivors-only", action="store_true", help="rerun only the last report's survivors")
    parser.add_argument("--rebaseline", action="store_true", help="ignore the cached baseline")
    parser.add_argument("--list", action="store_true", help="print the mutants and exit")
    parser.add_argument("--trio", action="store_true", help="run the trio variants of the tests too (slower)")
    parser.add_argument("--report-dir", type=Path, default=ROOT / "mutation-report", help="where the report goes")
    args = parser.parse_args(argv)
    if args.trio:  # for code only trio exercises, e.g. a worker thread the caller abandoned
        PYTEST_ARGS.remove("not trio")
        PYTEST_ARGS.remove("-k")
    modules = args.modules or list(TARGETS)
    if args.functions and len(modules) != 1:
        parser.error("--functions needs exactly one module")
    functions = set(args.functions.split(",")) if args.functions else None
    previous = _previous_results(args.report_dir) if args.survivors_only else {}
    plan = {m: find_mutants(m, functions) for m in modules}
    if args.list:
        for module, mutants in plan.items():
            for i, m in enumerate(mutants):
                print(f"{module}:{m.line} #{i} [{m.function}] {m.operator}: {m.original_line}  ->  {m.mutated_line}")
        return 0
    started = time.perf_counter()
    workers = [Worker() for _ in range(max(1, args.workers))]
    try:
        by_module = {}
        for module, mutants in plan.items():
            tests = args.tests or TARGETS.get(module)
            if not tests:
                parser.error(f"{module} is not in TARGETS; name its test files with --tests")
            by_module[module] = run_module(module, tests, mutants, workers, args.rebaseline, previous)
    finally:
        for w in workers:
            w.close()
    write_report(by_module, time.perf_counter() - started, args.report_dir)
    for module, results in by_module.items():
        killed, counted, percent = score(results)
        print(f"{module}: {killed}/{counted} killed = {percent:.1f} %")
    print(f"report: {args.report_dir / 'report.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
