"""The package's structure (DESIGN.md "Layout"): no import cycle, imports one way, small modules.

Imports under `if TYPE_CHECKING:` are ignored (they never run); imports inside functions
count, since they only hide a cycle.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "cogent"
MAX_LINES = 600

# The layers, top to bottom: a module may import its own layer and the layers below it. An
# entry names a module and its submodules; `cogent` (the package's re-exports) only itself.
LAYERS: list[tuple[str, ...]] = [
    ("cogent", "cogent.durable", "cogent.telemetry", "cogent.mcp"),
    ("cogent.agent",),
    ("cogent._run",),
    ("cogent.tools", "cogent.interceptors", "cogent.models", "cogent.result", "cogent.events"),
    ("cogent.context", "cogent._context_state", "cogent._signature", "cogent.messages", "cogent.usage"),
    ("cogent.exceptions", "cogent.core", "cogent._json", "cogent._secrets", "cogent._resources", "cogent._decisions"),
]
# Deliberate exceptions, each with its reason.
ALLOWED_UPWARD = {
    # `Agent(instrument=True)` loads the OpenTelemetry integration on demand (inside a method),
    # so that `import cogent` never imports it.
    ("cogent.agent", "cogent.telemetry"),
}


def modules() -> dict[str, Path]:
    """Every module of the package by dotted name."""
    found: dict[str, Path] = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


MODULES = modules()


class _Imports(ast.NodeVisitor):
    """The package modules one module imports at run time."""

    def __init__(self, name: str, is_package: bool) -> None:
        self.name, self.is_package, self.found = name, is_package, set[str]()

    def visit_If(self, node: ast.If) -> None:
        test = node.test
        if (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
            isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
        ):
            for child in node.orelse:
                self.visit(child)
            return
        self.generic_visit(node)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._add(alias.name)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level:
            base = self.name.split(".") if self.is_package else self.name.split(".")[:-1]
            base = base[: len(base) - (node.level - 1)]
            module = ".".join([*base, *([node.module] if node.module else [])])
        else:
            module = node.module or ""
        for alias in node.names:
            self._add(f"{module}.{alias.name}") or self._add(module)

    def _add(self, name: str) -> bool:
        while name:
            if name in MODULES:
                if name != self.name and not self.name.startswith(name + "."):
                    self.found.add(name)
                return True
            name = name.rpartition(".")[0]
        return False


def graph() -> dict[str, set[str]]:
    """Each module's run-time imports of other package modules."""
    edges: dict[str, set[str]] = {}
    for name, path in MODULES.items():
        visitor = _Imports(name, path.name == "__init__.py")
        visitor.visit(ast.parse(path.read_text(encoding="utf-8")))
        edges[name] = visitor.found
    return edges


def layer_of(name: str) -> int:
    """The index of the layer a module belongs to (the longest matching prefix decides)."""
    best, index = -1, -1
    for i, layer in enumerate(LAYERS):
        for prefix in layer:
            matches = name == prefix or (prefix != "cogent" and name.startswith(prefix + "."))
            if matches and len(prefix) > best:
                best, index = len(prefix), i
    assert index >= 0, f"{name} belongs to no layer: add it to LAYERS"
    return index


def test_the_package_has_no_import_cycle() -> None:
    """No module of cogent imports, directly or through others, a module that imports it back."""
    edges = graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    counter = [0]

    def strong(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in edges[v]:
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in edges:
        if v not in index:
            strong(v)
    assert cycles == []


def test_imports_run_one_way() -> None:
    """A module imports only its own layer and those below (agent -> _run -> tools/models -> context)."""
    upward = [
        f"{name} imports {target}"
        for name, targets in graph().items()
        for target in targets
        if layer_of(target) < layer_of(name) and (name, target) not in ALLOWED_UPWARD
    ]
    assert upward == []


@pytest.mark.parametrize("name", sorted(MODULES))
def test_no_module_is_over_600_lines(name: str) -> None:
    """Every module stays small enough to read in one sitting (about 600 lines at most)."""
    assert len(MODULES[name].read_text(encoding="utf-8").splitlines()) <= MAX_LINES


def test_import_cogent_imports_no_integration() -> None:
    """`import cogent` loads none of the extras' SDKs, so the core installs and starts without them."""
    code = (
        "import sys, cogent; "
        "print(sorted(m for m in ('openai', 'anthropic', 'mcp', 'dbos', 'opentelemetry', 'sqlalchemy', 'asyncio')"
        " if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
