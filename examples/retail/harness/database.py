"""The replay's databases: `data/db.json` loaded into SQL, one fresh copy per task, and the canonical hash.

`load_database` inserts the records of a `db.json` file into an empty database with
portable SQLAlchemy Core statements (it works on any engine). `DatabaseTemplate` does that
once per process into an in-memory SQLite database, and `fresh()` lends each task its own
database holding the unchanged file, copied with SQLite's backup API (about a millisecond).

`canonical_db` reads every table back into the canonical form of the data README, and
`canonical_sha256` hashes it the way `final_db_sha256` of `expected_outcomes.json` is
computed.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Self

import sqlalchemy as sa
from sqlalchemy.pool import StaticPool

from ..store import (
    DATA_DIR,
    METADATA,
    OPTIONAL_ORDER_FIELDS,
    Record,
    fulfillments,
    order_items,
    orders,
    payment_methods,
    payments,
    products,
    read_orders,
    read_products,
    read_users,
    users,
    variants,
)

__all__ = [
    "CanonicalDB",
    "DatabaseTemplate",
    "canonical_db",
    "canonical_json_db",
    "canonical_sha256",
    "changed_records",
    "load_database",
]

CanonicalDB = dict[str, dict[str, Record]]
"""A whole database in the canonical form: table name -> record id -> record."""


def canonical_json_db(path: Path) -> CanonicalDB:
    """Read a `db.json` file in the canonical form: every number a float, every optional order field present.

    Args:
        path: The file.

    Returns:
        The tables `products`, `users` and `orders`, keyed by record id, in file order.
    """
    db: CanonicalDB = json.loads(path.read_text(encoding="utf-8"), parse_int=float)
    for order in db["orders"].values():
        for name in OPTIONAL_ORDER_FIELDS:
            order.setdefault(name, None)
    return db


def _rows(db: CanonicalDB) -> dict[sa.Table, list[dict[str, Any]]]:
    """Split canonical records into the rows of each table (positions keep the records' order)."""
    rows: dict[sa.Table, list[dict[str, Any]]] = {table: [] for table in METADATA.sorted_tables}
    for position, product in enumerate(db["products"].values()):
        rows[products].append({"product_id": product["product_id"], "position": position, "name": product["name"]})
        rows[variants] += [
            {"product_id": product["product_id"], "position": index, **variant}
            for index, variant in enumerate(product["variants"].values())
        ]
    order_position = {order_id: position for position, order_id in enumerate(db["orders"])}
    for position, user in enumerate(db["users"].values()):
        if user["orders"] != sorted(user["orders"], key=order_position.__getitem__):
            raise ValueError(
                f"User {user['user_id']} lists their orders in another order than the orders table; the SQL "
                "schema derives the list from the table, so reorder the list in db.json."
            )
        rows[users].append(
            {
                "user_id": user["user_id"],
                "position": position,
                **user["name"],
                **user["address"],
                "email": user["email"],
            }
        )
        rows[payment_methods] += [
            {"user_id": user["user_id"], "payment_method_id": method_id, "position": index}
            | {key: method.get(key) for key in ("source", "brand", "last_four", "balance")}
            for index, (method_id, method) in enumerate(user["payment_methods"].items())
        ]
    for position, order in enumerate(db["orders"].values()):
        order_id = order["order_id"]
        rows[orders].append(
            {"order_id": order_id, "position": position, "user_id": order["user_id"], **order["address"]}
            | {"status": order["status"]}
            | {name: order[name] for name in OPTIONAL_ORDER_FIELDS}
        )
        for table, entries in (
            (order_items, order["items"]),
            (fulfillments, order["fulfillments"]),
            (payments, order["payment_history"]),
        ):
            rows[table] += [{"order_id": order_id, "position": index, **entry} for index, entry in enumerate(entries)]
    return rows


def load_database(engine: sa.Engine, db: CanonicalDB) -> None:
    """Create the retail tables in an empty database and insert a whole canonical database, in one transaction.

    Args:
        engine: The database (any SQLAlchemy engine; the tables must not exist yet).
        db: The records, e.g. from `canonical_json_db`.

    Raises:
        ValueError: If a user's order list is not in the order of the orders table (the
            schema derives the list from that table).
        sqlalchemy.exc.SQLAlchemyError: If the tables exist already, or the database fails.
    """
    rows = _rows(db)
    with engine.begin() as conn:
        METADATA.create_all(conn)
        for table in METADATA.sorted_tables:  # parents before children
            if rows[table]:
                conn.execute(table.insert(), rows[table])


def canonical_db(conn: sa.Connection) -> CanonicalDB:
    """Read the whole database back in the canonical form of the data README.

    Args:
        conn: A connection to a retail database.

    Returns:
        Every record of the three tables, keyed by id.
    """
    return {"orders": read_orders(conn), "products": read_products(conn), "users": read_users(conn)}


def canonical_sha256(db: CanonicalDB) -> str:
    """Return the SHA-256 of a canonical database, as `final_db_sha256` is defined (hex digest)."""
    text = json.dumps(db, sort_keys=True, separators=(",", ":"), check_circular=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def changed_records(initial: CanonicalDB, final: CanonicalDB) -> CanonicalDB:
    """Return the records of `final` that differ from `initial` or are new, as in `changed` of the outcomes.

    Args:
        initial: The database before the task.
        final: The database after it.

    Returns:
        Per table, the changed records by id; tables without a change are left out.
    """
    changed = {
        table: {key: record for key, record in records.items() if initial[table].get(key) != record}
        for table, records in final.items()
    }
    return {table: records for table, records in changed.items() if records}


class DatabaseTemplate:
    """A `db.json` file loaded once into an in-memory SQLite database, copied for each task.

    `fresh()` hands out a database holding the unchanged file. When its block ends, the
    template is copied over it again (SQLite's backup API, about a millisecond), and its
    engine is kept for the next `fresh()`: SQLAlchemy then compiles each statement once
    per engine instead of once per task, which is most of the cost of a task's SQL.

    Use the template as a context manager, or call `close()`, to free its databases.

    Args:
        path: The `db.json` file.

    Raises:
        OSError: If the file cannot be read.
        ValueError: If it is not valid JSON, or a user's order list does not follow the
            orders table (see `load_database`).
    """

    def __init__(self, path: Path = DATA_DIR / "db.json") -> None:
        self.path = path
        self.initial: CanonicalDB = canonical_json_db(path)
        """The file's records in the canonical form: what `canonical_db` reads from a fresh copy. Read only."""
        self._idle: list[tuple[sa.Engine, sqlite3.Connection]] = []
        self._connection: sqlite3.Connection | None = sqlite3.connect(":memory:", check_same_thread=False)
        engine = self._engine(self._connection)
        try:
            load_database(engine, self.initial)
        except BaseException:
            self.close()
            raise
        finally:
            engine.dispose(close=False)  # the template's connection stays open for `fresh()`

    @staticmethod
    def _engine(connection: sqlite3.Connection) -> sa.Engine:
        """Return an engine whose one connection is `connection` (closed by whoever opened it)."""
        return sa.create_engine("sqlite://", creator=lambda: connection, poolclass=StaticPool)

    def _template(self) -> sqlite3.Connection:
        if self._connection is None:
            raise RuntimeError(f"The DatabaseTemplate of {self.path} is closed; make copies before closing it.")
        return self._connection

    @contextmanager
    def fresh(self) -> Iterator[sa.Engine]:
        """Lend a database holding the unchanged `db.json`, for the length of the block.

        Yields:
            An engine on an in-memory database that no one else uses during the block. Its
            one connection may be used from any thread, by one user at a time (the desk
            makes one tool call at a time), and not after the block: the database then
            goes back to the template's state, for another task.

        Raises:
            RuntimeError: If the template is closed.
        """
        if self._idle:
            engine, connection = self._idle.pop()
        else:
            connection = sqlite3.connect(":memory:", check_same_thread=False)
            self._template().backup(connection)
            engine = self._engine(connection)
        try:
            yield engine
        finally:
            try:
                self._template().backup(connection)  # undo the block's changes
                self._idle.append((engine, connection))
            except (RuntimeError, sqlite3.Error):  # closed meanwhile, or left in a transaction: drop it
                engine.dispose()
                connection.close()

    def close(self) -> None:
        """Free the template's database and its idle copies (lent ones are freed when returned). Idempotent."""
        while self._idle:
            engine, connection = self._idle.pop()
            engine.dispose()
            connection.close()
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
