"""`final_db_sha256` of a database, computed from its tables, fast enough to run after every task.

`canonical_sha256(canonical_db(conn))` is the definition: read every record, serialize the
whole database as canonical JSON, hash it. It costs about 40 ms (2.8 MB of JSON), most of
it re-encoding records that no task changed. `CanonicalHasher` computes the same digest
from the same tables with less work:

- Every call reads every row of every table (as stored: JSON columns as their text), so
  the digest reflects exactly what the tables hold, whoever wrote them.
- The canonical JSON of one record is a function of its rows alone, so the hasher keeps,
  per record id, the text of each content (the rows) it has serialized. A record whose
  rows equal a content seen before costs a comparison of rows; a new one is read with
  `store.read_*` and serialized.
- The canonical JSON of the database is then assembled from the record texts exactly as
  `json.dumps(db, sort_keys=True, separators=(",", ":"))` writes it, and hashed whole.

The tests check that both ways give the same digest.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
import operator
import threading
from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa

from ..store import (
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

__all__ = ["CanonicalHasher"]

_Part = tuple[sa.Table, str, tuple[str, ...]]
"""Rows that make up records: a table, the column holding the record id, the columns (empty: all)."""

_RECORDS: dict[str, tuple[Callable[[sa.Connection, Sequence[str]], dict[str, Record]], tuple[_Part, ...]]] = {
    "orders": (
        read_orders,
        (
            (orders, "order_id", ()),
            (order_items, "order_id", ()),
            (fulfillments, "order_id", ()),
            (payments, "order_id", ()),
        ),
    ),
    "products": (read_products, ((products, "product_id", ()), (variants, "product_id", ()))),
    "users": (
        read_users,
        ((users, "user_id", ()), (payment_methods, "user_id", ()), (orders, "user_id", ("user_id", "order_id"))),
    ),
}
"""Per table of the canonical database: how to read its records, and the rows each record is made of."""


def _canonical(value: object) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), check_circular=False)


@functools.lru_cache(maxsize=256)  # parts x dialects: one dialect per engine
def _stored_rows(part: _Part, dialect: sa.Dialect) -> tuple[str, operator.itemgetter[Any]]:
    """Return the SQL that selects a part's rows as stored (JSON columns as text), and the getter of their record id."""
    table, key, names = part
    columns = [table.c[name] for name in names] if names else list(table.c)
    stored = [sa.cast(column, sa.Text) if isinstance(column.type, sa.JSON) else column for column in columns]
    query = sa.select(*stored).order_by(table.c[key], table.c.position)
    return str(query.compile(dialect=dialect)), operator.itemgetter([column.name for column in columns].index(key))


def _rows_by_record(conn: sa.Connection, part: _Part) -> dict[str, tuple[tuple[Any, ...], ...]]:
    """Return the rows of one part, as stored, grouped by record id, in position order.

    The rows come straight from the DB-API cursor: plain tuples, which compare and hash in
    C, and a third of the objects SQLAlchemy rows would make (reading every row after every
    task is the replay's largest cost).
    """
    sql, record_id_of = _stored_rows(part, conn.dialect)
    cursor = conn.connection.cursor()
    try:
        cursor.execute(sql)
        rows = cursor.fetchall()
    finally:
        cursor.close()
    return {record_id: tuple(group) for record_id, group in itertools.groupby(rows, record_id_of)}


class CanonicalHasher:
    """Computes `final_db_sha256` of retail databases from their tables, remembering record texts.

    One hasher serves any number of databases and threads. It hashes one database at a
    time: the work is CPU-bound, and several threads hashing at once made the replay
    spend about three times the CPU (measured) for no gain.

    Args:
        max_records: How many record texts to keep; past that the hasher forgets them all
            and starts over (a bound on memory in long-running processes).
    """

    def __init__(self, *, max_records: int = 100_000) -> None:
        self.max_records = max_records
        self._texts: dict[tuple[str, str], list[tuple[tuple[Any, ...], str]]] = {}
        """Per (table, record id): each content seen (the record's rows) and its text, `"<id>":<canonical JSON>`."""
        self._count = 0
        self._lock = threading.Lock()

    def sha256(self, conn: sa.Connection) -> str:
        """Return the SHA-256 of the database's canonical JSON, as `final_db_sha256` is defined.

        The database must not change while it is hashed (hash it when its task is done).

        Args:
            conn: A connection to a retail database.

        Returns:
            The hex digest; equal to `canonical_sha256(canonical_db(conn))`.
        """
        with self._lock:
            return self._sha256(conn)

    def _sha256(self, conn: sa.Connection) -> str:
        if self._count > self.max_records:
            self._texts.clear()
            self._count = 0
        tables: list[str] = []
        for name, (read, parts) in sorted(_RECORDS.items()):
            own, *children = (_rows_by_record(conn, part) for part in parts)
            texts: dict[str, str] = {}
            missing: dict[str, tuple[Any, ...]] = {}
            for record_id, rows in own.items():
                key = (rows, *(c.get(record_id, ()) for c in children))
                for seen, text in self._texts.get((name, record_id), ()):
                    if seen == key:  # comparing rows is cheaper than hashing them
                        texts[record_id] = text
                        break
                else:
                    missing[record_id] = key
            if missing:
                for record_id, record in read(conn, list(missing)).items():
                    texts[record_id] = f"{_canonical(record_id)}:{_canonical(record)}"
                    self._texts.setdefault((name, record_id), []).append((missing[record_id], texts[record_id]))
                    self._count += 1
            tables.append(f"{_canonical(name)}:{{{','.join(texts[i] for i in sorted(texts))}}}")
        return hashlib.sha256(("{" + ",".join(tables) + "}").encode("utf-8")).hexdigest()
