"""Checks the retail data layer against the tau2-bench reference outcomes."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from examples.retail.store import (
    ALL_OPERATIONS,
    DATA_DIR,
    READ_OPERATIONS,
    WRITE_OPERATIONS,
    RetailDB,
    RetailError,
    calculate,
    cancel_pending_order,
    get_order_details,
    modify_pending_order_items,
)

INITIAL_SHA256 = "3ca5bd70e621602e23d909c87f26224a1a486e75955d8a6da53721ec224b23dc"
EXPECTED: dict[str, Any] = json.loads((DATA_DIR / "expected_outcomes.json").read_text(encoding="utf-8"))
OPERATIONS: dict[str, Callable[..., str]] = {operation.__name__: operation for operation in ALL_OPERATIONS}


@dataclass
class Context:
    """The smallest context the operations accept."""

    db: RetailDB


def run(operation: Callable[..., str], ctx: Context, **arguments: Any) -> str:
    """Calls an operation and formats a failure the way the framework does."""
    try:
        return operation(ctx, **arguments)
    except RetailError as exc:
        return f"Error: {exc}"


def test_operation_sets() -> None:
    """The 15 operations are split into 8 read and 7 write operations."""
    assert len(ALL_OPERATIONS) == len(set(ALL_OPERATIONS)) == 15
    assert set(ALL_OPERATIONS) == set(READ_OPERATIONS) | set(WRITE_OPERATIONS)
    assert (len(READ_OPERATIONS), len(WRITE_OPERATIONS)) == (8, 7)


def test_task_ids_match_tasks_file() -> None:
    """The reference outcomes cover exactly the tasks of tasks.json, in order."""
    tasks = json.loads((DATA_DIR / "tasks.json").read_text(encoding="utf-8"))
    assert [task["id"] for task in tasks] == list(EXPECTED)


@pytest.mark.parametrize("task_id", list(EXPECTED))
def test_gold_actions_match_reference(task_id: str) -> None:
    """Replaying a task's gold actions gives the reference outputs, changes and hash."""
    expected = EXPECTED[task_id]
    ctx = Context(RetailDB.fresh())
    for action in expected["actions"]:
        output = run(OPERATIONS[action["name"]], ctx, **action["arguments"])
        assert output == action["output"], action["action_id"]
        assert output.startswith("Error: ") == action["error"], action["action_id"]
    assert ctx.db.changed() == expected["changed"]
    assert ctx.db.canonical_sha256() == expected["final_db_sha256"]


def test_initial_hash() -> None:
    """An unchanged database hashes to the documented canonical value."""
    db = RetailDB.fresh()
    assert db.canonical_sha256() == INITIAL_SHA256
    assert db.changed() == {}


def test_failing_write_leaves_db_unchanged() -> None:
    """A write failing on its second item pair does not apply the first pair."""
    ctx = Context(RetailDB.fresh())
    order = next(o for o in ctx.db.orders if o["status"] == "pending" and len(o["items"]) > 1)
    first_item, second_item = order["items"][:2]
    variants = ctx.db.products.get(first_item["product_id"])["variants"].values()
    replacement = next(v["item_id"] for v in variants if v["available"] and v["item_id"] != first_item["item_id"])

    output = run(
        modify_pending_order_items,
        ctx,
        order_id=order["order_id"],
        item_ids=[first_item["item_id"], second_item["item_id"]],
        new_item_ids=[replacement, "0000000000"],
        payment_method_id=order["payment_history"][0]["payment_method_id"],
    )

    assert output == "Error: Variant not found"
    assert ctx.db.changed() == {}
    assert ctx.db.canonical_sha256() == INITIAL_SHA256


def test_fresh_copies_are_isolated() -> None:
    """Two fresh copies never see each other's writes."""
    first, second = Context(RetailDB.fresh()), Context(RetailDB.fresh())
    pending = next(order["order_id"] for order in first.db.orders if order["status"] == "pending")

    cancelled = json.loads(cancel_pending_order(first, pending, "no longer needed"))

    assert cancelled["status"] == "cancelled"
    assert json.loads(get_order_details(second, pending))["status"] == "pending"
    assert second.db.changed() == {}
    assert second.db.canonical_sha256() == INITIAL_SHA256
    assert first.db.canonical_sha256() != INITIAL_SHA256


@pytest.mark.parametrize(
    ("expression", "output"),
    [
        ("3131.1 + 4777.75 + 367.38", "8276.23"),
        (" 2 * (3 - -1) / 4", "2.0"),
        ("1 / 0", "Error: division by zero"),
        ("2 ** 3", "Error: Only numbers, +, -, *, / and parentheses are supported"),
        ("(1", "Error: '(' was never closed (<string>, line 1)"),
        ("__import__('os')", "Error: Invalid characters in expression"),
    ],
)
def test_calculate(expression: str, output: str) -> None:
    """The calculate tool does plain arithmetic like the reference, and nothing else."""
    assert run(calculate, Context(RetailDB.fresh()), expression=expression) == output
