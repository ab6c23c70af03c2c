"""The retail SQL store and tools, called directly, against the tau2-bench reference outcomes (examples/retail)."""

from __future__ import annotations

import json
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.schema import CreateTable

from examples.retail.context import RetailContext
from examples.retail.harness.database import (
    DatabaseTemplate,
    canonical_db,
    canonical_json_db,
    canonical_sha256,
    changed_records,
    load_database,
)
from examples.retail.harness.hashing import CanonicalHasher
from examples.retail.store import DATA_DIR, METADATA, RetailError, get_order, order_items, payment_methods, payments
from examples.retail.tools import IDENTIFICATION_TOOLS, TOOLS, WRITE_TOOLS

INITIAL_SHA256 = "3ca5bd70e621602e23d909c87f26224a1a486e75955d8a6da53721ec224b23dc"
EXPECTED: dict[str, Any] = json.loads((DATA_DIR / "expected_outcomes.json").read_text(encoding="utf-8"))
TEMPLATE = DatabaseTemplate()
INITIAL = TEMPLATE.initial


def call(ctx: RetailContext, name: str, **arguments: Any) -> str:
    """Call a tool as a plain function and format a failure the way the framework does."""
    tool = TOOLS[name]
    try:
        return tool(ctx, **arguments) if "ctx" in tool.__wrapped__.__annotations__ else tool(**arguments)
    except RetailError as exc:
        return f"Error: {exc}"


def snapshot(db: sa.Engine) -> dict[str, Any]:
    """The whole database in canonical form."""
    with db.connect() as conn:
        return canonical_db(conn)


def test_tool_sets() -> None:
    """The 15 tools are 8 reads and 7 writes; exactly the writes require approval."""
    assert len(TOOLS) == 15
    assert len(WRITE_TOOLS) == 7
    assert all(TOOLS[name].requires_approval for name in WRITE_TOOLS)
    assert set(TOOLS) - WRITE_TOOLS >= IDENTIFICATION_TOOLS


def test_task_ids_match_tasks_file() -> None:
    """The reference outcomes cover exactly the tasks of tasks.json, in order."""
    tasks = json.loads((DATA_DIR / "tasks.json").read_text(encoding="utf-8"))
    assert [task["id"] for task in tasks] == list(EXPECTED)


def test_loaded_database_reads_back_as_db_json() -> None:
    """A fresh database reads back as the canonical db.json, hashes to the documented value, and has no changes."""
    with TEMPLATE.fresh() as db:
        db_now = snapshot(db)

    assert db_now == canonical_json_db(DATA_DIR / "db.json")
    assert canonical_sha256(db_now) == INITIAL_SHA256
    assert changed_records(INITIAL, db_now) == {}


@pytest.mark.parametrize("task_id", list(EXPECTED))
def test_gold_actions_match_reference(task_id: str) -> None:
    """A task's gold actions, called as tools on a fresh database, give the reference outputs, changes and hash."""
    expected = EXPECTED[task_id]
    with TEMPLATE.fresh() as db:
        ctx = RetailContext(db=db)
        for action in expected["actions"]:
            output = call(ctx, action["name"], **action["arguments"])
            assert output == action["output"], action["action_id"]
            assert output.startswith("Error: ") == action["error"], action["action_id"]
        final = snapshot(db)
    assert changed_records(INITIAL, final) == expected["changed"]
    assert canonical_sha256(final) == expected["final_db_sha256"]


def _pending_order_with_two_items() -> dict[str, Any]:
    return next(o for o in INITIAL["orders"].values() if o["status"] == "pending" and len(o["items"]) > 1)


def test_failing_write_leaves_db_unchanged() -> None:
    """A write failing on its second item pair does not apply the first pair."""
    order = _pending_order_with_two_items()
    first_item, second_item = order["items"][:2]
    variants = INITIAL["products"][first_item["product_id"]]["variants"].values()
    replacement = next(v["item_id"] for v in variants if v["available"] and v["item_id"] != first_item["item_id"])

    with TEMPLATE.fresh() as db:
        output = call(
            RetailContext(db=db),
            "modify_pending_order_items",
            order_id=order["order_id"],
            item_ids=[first_item["item_id"], second_item["item_id"]],
            new_item_ids=[replacement, "0000000000"],
            payment_method_id=order["payment_history"][0]["payment_method_id"],
        )
        final = snapshot(db)

    assert output == "Error: Variant not found"
    assert changed_records(INITIAL, final) == {}


def test_write_failing_after_a_change_rolls_the_change_back() -> None:
    """A cancellation that credits a gift card and then fails rolls the credit back: one write, one transaction."""
    user = next(
        u for u in INITIAL["users"].values() if any(m["source"] == "gift_card" for m in u["payment_methods"].values())
    )
    gift_card = next(m for m in user["payment_methods"].values() if m["source"] == "gift_card")
    order_id = next(
        o["order_id"]
        for o in INITIAL["orders"].values()
        if o["user_id"] == user["user_id"] and o["status"] == "pending"
    )
    with TEMPLATE.fresh() as db:
        with db.begin() as conn:  # a second payment, after a gift card one, by a method the user does not have
            position = len(get_order(conn, order_id)["payment_history"])
            rows = [(gift_card["id"], 10.0), ("paypal_0000000", 5.0)]
            conn.execute(
                sa.insert(payments),
                [
                    {"order_id": order_id, "position": position + i, "transaction_type": "payment", "amount": amount}
                    | {"payment_method_id": method_id}
                    for i, (method_id, amount) in enumerate(rows)
                ],
            )
        before = snapshot(db)

        output = call(RetailContext(db=db), "cancel_pending_order", order_id=order_id, reason="no longer needed")

        after = snapshot(db)
        with db.connect() as conn:
            balance = conn.scalar(
                sa.select(payment_methods.c.balance).where(payment_methods.c.payment_method_id == gift_card["id"])
            )
    assert output == "Error: Payment method not found"
    assert after == before
    assert balance == gift_card["balance"]


def test_fresh_copies_are_isolated() -> None:
    """Two fresh copies never see each other's writes."""
    pending = next(o["order_id"] for o in INITIAL["orders"].values() if o["status"] == "pending")
    with TEMPLATE.fresh() as first, TEMPLATE.fresh() as second:
        cancelled = json.loads(
            call(RetailContext(db=first), "cancel_pending_order", order_id=pending, reason="no longer needed")
        )

        assert cancelled["status"] == "cancelled"
        assert json.loads(call(RetailContext(db=second), "get_order_details", order_id=pending))["status"] == "pending"
        assert changed_records(INITIAL, snapshot(second)) == {}
        assert canonical_sha256(snapshot(first)) != INITIAL_SHA256


def test_hasher_equals_the_definition_and_sees_every_change() -> None:
    """The remembering hasher gives the definition's digest, also for changes made behind the tools' back."""
    hasher = CanonicalHasher()
    order = _pending_order_with_two_items()
    with TEMPLATE.fresh() as db:
        with db.connect() as conn:
            assert hasher.sha256(conn) == INITIAL_SHA256
        call(RetailContext(db=db), "cancel_pending_order", order_id=order["order_id"], reason="ordered by mistake")
        with db.connect() as conn:
            assert hasher.sha256(conn) == canonical_sha256(canonical_db(conn)) != INITIAL_SHA256
        with db.begin() as conn:  # one float of one item, changed in SQL: the record's text must be recomputed
            first = (order_items.c.order_id == order["order_id"]) & (order_items.c.position == 0)
            conn.execute(sa.update(order_items).where(first).values(price=order["items"][0]["price"] + 1e-9))
        with db.connect() as conn:
            assert hasher.sha256(conn) == canonical_sha256(canonical_db(conn))
    with TEMPLATE.fresh() as db, db.connect() as conn:
        assert hasher.sha256(conn) == INITIAL_SHA256


def test_hasher_forgets_past_its_bound() -> None:
    """A hasher bounded to fewer records than a database holds still gives the right digest, every time."""
    hasher = CanonicalHasher(max_records=10)
    with TEMPLATE.fresh() as db, db.connect() as conn:
        assert [hasher.sha256(conn) for _ in range(2)] == [INITIAL_SHA256] * 2


def test_fresh_database_is_unchanged_even_after_a_previous_block_wrote() -> None:
    """A database lent again after a block that changed it holds the unchanged db.json."""
    pending = next(o["order_id"] for o in INITIAL["orders"].values() if o["status"] == "pending")
    with DatabaseTemplate() as template:
        with template.fresh() as db:
            call(RetailContext(db=db), "cancel_pending_order", order_id=pending, reason="no longer needed")
        with template.fresh() as again:
            assert again is db  # the same engine, lent again
            assert canonical_sha256(snapshot(again)) == INITIAL_SHA256


def test_database_left_in_a_transaction_is_not_lent_again() -> None:
    """A block that leaves a write transaction open does not leak its change into the next database."""
    with DatabaseTemplate() as template:
        with template.fresh() as db:
            leaked = db.connect()
            leaked.begin()
            leaked.execute(sa.update(payment_methods).values(balance=0.0))
        with template.fresh() as again:
            assert again is not db  # a new copy: the one left in a transaction was dropped
            assert canonical_sha256(snapshot(again)) == INITIAL_SHA256
        leaked.invalidate()  # its database is gone: discard the connection without a rollback


def test_closed_template_lends_no_database() -> None:
    """A closed template refuses `fresh()` with a message, and closing it twice is allowed."""
    template = DatabaseTemplate()
    template.close()
    template.close()

    with pytest.raises(RuntimeError, match="is closed"), template.fresh():
        pass


def test_loading_rejects_a_user_order_list_the_schema_cannot_derive() -> None:
    """A user whose order list is not in orders-table order is refused with a message, not silently reordered."""
    db = canonical_json_db(DATA_DIR / "db.json")
    user = next(u for u in db["users"].values() if len(u["orders"]) > 1)
    user["orders"].reverse()
    engine = sa.create_engine("sqlite://")

    with pytest.raises(ValueError, match=f"User {user['user_id']} lists their orders"):
        load_database(engine, db)


def test_schema_compiles_for_postgresql() -> None:
    """Every table's DDL compiles for PostgreSQL too: the schema uses no SQLite-only types."""
    ddl = [str(CreateTable(table).compile(dialect=postgresql.dialect())) for table in METADATA.sorted_tables]

    assert len(ddl) == 8
    assert all("DOUBLE PRECISION" in text for text in ddl if "price" in text or "amount" in text)


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
    assert call(RetailContext(db=sa.create_engine("sqlite://")), "calculate", expression=expression) == output
