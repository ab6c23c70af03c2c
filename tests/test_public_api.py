"""Public API hygiene: every public module's `__all__` is clean and fully documented.

A public module is `cogent` or any module under it with no `_`-prefixed part in its dotted
name. The API reference in `docs/api/` renders objects with mkdocstrings directives
(`::: cogent.context` followed by an `options: members:` list); every public name must be
rendered by one of them.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import cogent

ROOT = Path(__file__).resolve().parent.parent
API_DOCS = ROOT / "docs" / "api"
DIRECTIVE = re.compile(r"^::: (?P<path>[\w.]+)\s*$")
MEMBER = re.compile(r"^\s+- (?P<name>\w+)\s*$")
# The modules the design names as the ones users import from; each has its own API page.
USER_MODULES = [
    "cogent",
    "cogent.context",
    "cogent.core",
    "cogent.tools",
    "cogent.agent",
    "cogent.result",
    "cogent.events",
    "cogent.interceptors",
    "cogent.models",
    "cogent.models.openai",
    "cogent.models.anthropic",
    "cogent.mcp",
    "cogent.telemetry",
    "cogent.messages",
    "cogent.usage",
    "cogent.exceptions",
]


def public_modules() -> list[str]:
    """Every importable module of the package whose dotted name has no private part."""
    names = ["cogent"]
    for info in pkgutil.walk_packages(cogent.__path__, prefix="cogent."):
        if not any(part.startswith("_") for part in info.name.split(".")):
            names.append(info.name)
    return sorted(names)


def documented() -> dict[str, list[str]]:
    """Map each `::: path` directive of docs/api/ to the members it lists (empty: the object itself)."""
    directives: dict[str, list[str]] = {}
    for page in sorted(API_DOCS.glob("*.md")):
        current: list[str] | None = None
        for line in page.read_text(encoding="utf-8").splitlines():
            if match := DIRECTIVE.match(line):
                current = directives.setdefault(match["path"], [])
            elif current is not None and (member := MEMBER.match(line)):
                current.append(member["name"])
            elif line and not line[0].isspace():
                current = None
    return directives


def resolve(path: str) -> Any:
    """Import `a.b.c` as a module, or as attribute `c` of module `a.b`."""
    try:
        return importlib.import_module(path)
    except ModuleNotFoundError:
        module, _, name = path.rpartition(".")
        return getattr(importlib.import_module(module), name)


def documented_objects() -> list[Any]:
    """The objects the API reference renders."""
    objects = []
    for path, members in documented().items():
        owner = resolve(path)
        objects.extend(getattr(owner, name) for name in members) if members else objects.append(owner)
    return objects


MODULES = public_modules()


def test_the_user_facing_modules_are_public() -> None:
    """The modules the design tells users to import from are found as public modules."""
    assert set(USER_MODULES) <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_all_is_sorted_public_and_resolvable(name: str) -> None:
    """`__all__` exists, is sorted without duplicates, holds no private names, and every name resolves."""
    module: ModuleType = importlib.import_module(name)
    exported = getattr(module, "__all__", None)
    assert isinstance(exported, list), f"{name} has no __all__ list."
    assert exported == sorted(exported), f"{name}.__all__ is not sorted."
    assert len(set(exported)) == len(exported), f"{name}.__all__ has duplicates."
    assert not [n for n in exported if n.startswith("_")], f"{name}.__all__ exports private names."
    missing = [n for n in exported if not hasattr(module, n)]
    assert not missing, f"{name}.__all__ names what the module does not define: {missing}"


@pytest.mark.parametrize("name", MODULES)
def test_every_public_name_is_in_the_api_reference(name: str) -> None:
    """Each name in a public module's `__all__` is rendered somewhere in docs/api/."""
    module = importlib.import_module(name)
    rendered = {id(obj) for obj in documented_objects()}
    undocumented = [n for n in module.__all__ if id(getattr(module, n)) not in rendered]
    assert not undocumented, f"Add these {name} names to a members: list in docs/api/: {undocumented}"


def test_the_api_reference_renders_only_public_names() -> None:
    """Every member a directive lists is in its module's `__all__`, so no page documents stale names."""
    for path, members in documented().items():
        owner = resolve(path)
        if isinstance(owner, ModuleType):
            stale = [m for m in members if m not in getattr(owner, "__all__", ())]
            assert not stale, f"docs/api lists {stale} under ::: {path}, which are not in its __all__."


def test_each_user_module_has_a_directive() -> None:
    """Each user-facing module is rendered by its own `::: module` directive."""
    assert set(USER_MODULES) <= set(documented())


def test_top_level_reexports_are_the_submodules_objects() -> None:
    """`cogent.X` is the very object its home module exports, not a copy or wrapper."""
    homes = [importlib.import_module(n) for n in USER_MODULES if n != "cogent"]
    for name in cogent.__all__:
        obj = getattr(cogent, name)
        assert any(getattr(home, name, None) is obj for home in homes), f"cogent.{name} has no home module."
