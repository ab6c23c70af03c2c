"""Every code block of README.md and docs/ is executed, offline, as executable documentation.

The rules (also stated in `docs/contributing.md`):

- A fenced block whose language is `python` (or `py`) is executed. The blocks of one page
  run in order in one module namespace, so a later block uses what an earlier one defined.
- A block that uses top-level `await` runs inside `anyio.run`, once on asyncio and once on
  trio; the other blocks run as plain synchronous code (so `agent.run_sync()` works there).
- A `text` block that follows a python block with only blank lines between them is that
  block's expected output: what the python block prints must equal it.
- `<!-- not-run: reason -->` on the line just before a fence marks a python block that is
  not executed (it must still compile). The reason is required; keep such blocks rare.
- Blocks in other languages (`bash`, `toml`, `json`, `text`, ...) are not executed, but
  every fence must name its language so that no python block escapes by accident.
"""

from __future__ import annotations

import ast
import contextlib
import inspect
import io
import re
import sys
import types
from dataclasses import dataclass
from pathlib import Path

import anyio
import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = sorted([ROOT / "README.md", *(ROOT / "docs").rglob("*.md")])
PYTHON = frozenset({"python", "py"})
OTHER_LANGUAGES = frozenset({"bash", "console", "json", "text", "toml", "yaml"})
FENCE = re.compile(r"^(?P<indent> *)(?P<fence>```+|~~~+)(?P<info>[^`\n]*)$")
NOT_RUN = re.compile(r"^\s*<!--\s*not-run:\s*(?P<reason>.*?)\s*-->\s*$")


@dataclass(frozen=True, kw_only=True)
class Block:
    """One fenced code block of a page."""

    path: Path
    """The page."""
    line: int
    """The 1-based line of the opening fence."""
    language: str
    """The first word of the fence's info string."""
    source: str
    """The block's text, dedented by the fence's indentation."""
    not_run: str | None
    """The reason given by a `<!-- not-run: ... -->` marker, if any."""
    expected_output: str | None
    """The text of the `text` block that directly follows, for python blocks."""

    @property
    def where(self) -> str:
        """`path:line`, for messages."""
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def parse_blocks(path: Path) -> list[Block]:
    """Return the fenced code blocks of a Markdown page, in order."""
    lines = path.read_text(encoding="utf-8").splitlines()
    raw: list[tuple[int, int, str, str, str | None]] = []  # (start, end, language, source, not_run)
    i = 0
    while i < len(lines):
        match = FENCE.match(lines[i])
        if match is None:
            i += 1
            continue
        indent, fence = len(match["indent"]), match["fence"]
        language = match["info"].strip().split(" ")[0].lower()
        previous = next((lines[j] for j in range(i - 1, -1, -1) if lines[j].strip()), "")
        marker = NOT_RUN.match(previous)
        body: list[str] = []
        j = i + 1
        while j < len(lines) and not lines[j].strip().startswith(fence):
            body.append(lines[j][indent:] if lines[j][:indent].strip() == "" else lines[j])
            j += 1
        if j == len(lines):
            raise AssertionError(f"{path.relative_to(ROOT)}:{i + 1}: the code fence is never closed.")
        raw.append((i, j, language, "\n".join(body) + "\n", marker["reason"] if marker else None))
        i = j + 1
    blocks = []
    for k, (start, _end, language, source, not_run) in enumerate(raw):
        expected = None
        if language in PYTHON and k + 1 < len(raw):
            next_start, _, next_language, next_source, _ = raw[k + 1]
            between = lines[raw[k][1] + 1 : next_start]
            if next_language == "text" and all(not line.strip() for line in between):
                expected = next_source
        blocks.append(
            Block(
                path=path,
                line=start + 1,
                language=language,
                source=source,
                not_run=not_run,
                expected_output=expected,
            )
        )
    return blocks


def compile_block(block: Block) -> types.CodeType:
    """Compile a python block, allowing top-level `await`."""
    return compile(
        block.source,
        f"<{block.where}>",
        "exec",
        flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT,
        dont_inherit=True,
    )


def run_page(path: Path, backend: str) -> int:
    """Execute a page's python blocks in one fresh module; return how many ran."""
    module = types.ModuleType("docs_example_" + re.sub(r"\W", "_", path.stem))
    module.__file__ = str(path)
    sys.modules[module.__name__] = module  # dataclasses and pydantic look classes' modules up here
    executed = 0
    try:
        for block in parse_blocks(path):
            if block.language not in PYTHON:
                continue
            code = compile_block(block)
            if block.not_run is not None:
                continue
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                try:
                    if code.co_flags & inspect.CO_COROUTINE:  # the block uses top-level await

                        async def main(code: types.CodeType = code) -> None:
                            await eval(code, module.__dict__)

                        anyio.run(main, backend=backend)
                    else:
                        exec(code, module.__dict__)
                except Exception as exc:
                    raise AssertionError(f"The example at {block.where} raised {exc!r}") from exc
            if block.expected_output is not None:
                printed = "\n".join(line.rstrip() for line in out.getvalue().rstrip("\n").splitlines())
                expected = "\n".join(line.rstrip() for line in block.expected_output.rstrip("\n").splitlines())
                assert printed == expected, f"The example at {block.where} printed something else than documented."
            executed += 1
    finally:
        sys.modules.pop(module.__name__, None)
    return executed


def all_blocks() -> list[Block]:
    """Every fenced block of every page."""
    return [block for page in PAGES for block in parse_blocks(page)]


PAGES_WITH_CODE = [page for page in PAGES if any(b.language in PYTHON for b in parse_blocks(page))]


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
@pytest.mark.parametrize("page", PAGES_WITH_CODE, ids=lambda p: str(p.relative_to(ROOT)))
def test_page_examples_run(page: Path, backend: str) -> None:
    """Each page's python blocks run in order without error and print what the page shows."""
    assert run_page(page, backend) > 0


def test_every_fence_names_a_known_language() -> None:
    """No code block escapes execution by omitting or misspelling its language."""
    unknown = [b.where for b in all_blocks() if b.language not in PYTHON | OTHER_LANGUAGES]
    assert not unknown, f"These fences name no known language (use python, bash, text, ...): {unknown}"


def test_not_run_blocks_are_rare_and_explained() -> None:
    """Blocks marked not-run give a reason, compile, and stay a small minority."""
    python_blocks = [b for b in all_blocks() if b.language in PYTHON]
    skipped = [b for b in python_blocks if b.not_run is not None]
    for block in skipped:
        assert block.not_run, f"{block.where}: a not-run marker needs a reason."
        compile_block(block)
    assert len(skipped) * 10 <= len(python_blocks), f"Too many not-run blocks: {[b.where for b in skipped]}"


def test_docs_have_examples() -> None:
    """The documentation contains executable examples (the extractor finds them)."""
    assert sum(1 for b in all_blocks() if b.language in PYTHON and b.not_run is None) >= 50
