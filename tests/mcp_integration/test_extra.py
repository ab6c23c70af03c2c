"""The MCP integration is an extra: `import cogent` never imports it, and without it the error says what to install."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest


def test_import_cogent_imports_neither_the_sdk_nor_opentelemetry() -> None:
    """A fresh interpreter's `import cogent` leaves `mcp`, `cogent.mcp` and `opentelemetry` unimported."""
    code = "import sys, cogent; print(sorted(m for m in ('mcp', 'cogent.mcp', 'opentelemetry') if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.strip() == "[]"


def test_missing_extra_raises_an_import_error_with_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the `mcp` package, importing cogent.mcp says `pip install "cogent-context[mcp]"`."""
    monkeypatch.setitem(sys.modules, "mcp", None)  # makes `import mcp` fail
    for name in [m for m in sys.modules if m == "cogent.mcp" or m.startswith("cogent.mcp.")]:
        monkeypatch.delitem(sys.modules, name)
    with pytest.raises(ImportError, match=r'pip install "cogent-context\[mcp\]"'):
        importlib.import_module("cogent.mcp")
