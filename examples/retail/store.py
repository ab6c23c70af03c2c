"""Data layer of the tau2-bench retail example: the store database and its 15 tools.

The behaviour reproduces the tau2-bench reference implementation byte for byte: the
same error messages, the same output strings and the same final database, as
documented in ``data/README.md``.

Each task works on its own :class:`RetailDB`. All copies share one read-only base,
loaded once per process, and keep only the records they modify in a private overlay,
so that creating a copy costs almost nothing.

The operations are plain functions whose first parameter is a context holding the
database (see :class:`HasRetailDB`). Their docstrings are the tool descriptions shown
to the model. They return the tool output as a string and raise :class:`RetailError`
with the reference message when the call fails, leaving the database unchanged.
"""

from __future__ import annotations

import ast
import copy
import functools
import hashlib
import json
import operator
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import Any, Generic, Literal, Protocol, TypedDict, TypeVar, cast

__all__ = [
    "ALL_OPERATIONS",
    "DATA_DIR",
    "READ_OPERATIONS",
    "WRITE_OPERATIONS",
    "Address",
    "CreditCard",
    "Fulfillment",
    "GiftCard",
    "HasRetailDB",
    "Name",
    "Order",
    "OrderItem",
    "PayPal",
    "Payment",
    "PaymentMethod",
    "Product",
    "RetailDB",
    "RetailError",
    "Table",
    "User",
    "Variant",
    "calculate",
    "cancel_pending_order",
    "exchange_delivered_order_items",
    "find_user_id_by_email",
    "find_user_id_by_name_zip",
    "get_order_details",
    "get_product_details",
    "get_user_details",
    "list_all_product_types",
    "modify_pending_order_address",
    "modify_pending_order_items",
    "modify_pending_order_payment",
    "modify_user_address",
    "return_delivered_order_items",
    "transfer_to_human_agents",
]

DATA_DIR = Path(__file__).parent / "data"
"""Folder of `db.json`, `tasks.json`, `policy.md` and the reference outcomes."""


# --------------------------------------------------------------------------- #
# Record types. Field order is the schema order, which is also the key order of
# the records in db.json and in the tool outputs.
# --------------------------------------------------------------------------- #


class Address(TypedDict):
    """A postal address, of a user or of an order."""

    address1: str
    address2: str
    city: str
    country: str
    state: str
    zip: str


class Name(TypedDict):
    """The name of a user."""

    first_name: str
    last_name: str


class CreditCard(TypedDict):
    """A credit card payment method."""

    source: Literal["credit_card"]
    id: str
    brand: str
    last_four: str


class PayPal(TypedDict):
    """A PayPal payment method."""

    source: Literal["paypal"]
    id: str


class GiftCard(TypedDict):
    """A gift card payment method, with its remaining balance."""

    source: Literal["gift_card"]
    id: str
    balance: float


PaymentMethod = CreditCard | PayPal | GiftCard


class User(TypedDict):
    """A customer."""

    user_id: str
    name: Name
    address: Address
    email: str
    payment_methods: dict[str, PaymentMethod]
    orders: list[str]


class Variant(TypedDict):
    """One item (set of options) of a product."""

    item_id: str
    options: dict[str, str]
    available: bool
    price: float


class Product(TypedDict):
    """A product type and all its variants, keyed by item id."""

    name: str
    product_id: str
    variants: dict[str, Variant]


class OrderItem(TypedDict):
    """One item of an order."""

    name: str
    product_id: str
    item_id: str
    price: float
    options: dict[str, str]


class Fulfillment(TypedDict):
    """A shipment of some items of an order."""

    tracking_id: list[str]
    item_ids: list[str]


class Payment(TypedDict):
    """An entry of an order's payment history."""

    transaction_type: Literal["payment", "refund"]
    amount: float
    payment_method_id: str


class Order(TypedDict):
    """An order. The last seven fields are ``None`` until a tool sets them."""

    order_id: str
    user_id: str
    address: Address
    items: list[OrderItem]
    status: str
    fulfillments: list[Fulfillment]
    payment_history: list[Payment]
    cancel_reason: str | None
    exchange_items: list[str] | None
    exchange_new_items: list[str] | None
    exchange_payment_method_id: str | None
    exchange_price_difference: float | None
    return_items: list[str] | None
    return_payment_method_id: str | None


_OPTIONAL_ORDER_FIELDS = (
    "cancel_reason",
    "exchange_items",
    "exchange_new_items",
    "exchange_payment_method_id",
    "exchange_price_difference",
    "return_items",
    "return_payment_method_id",
)


class RetailError(Exception):
    """A tool call failed; the message is the reference error text."""


# --------------------------------------------------------------------------- #
# Database
# --------------------------------------------------------------------------- #

RecordT = TypeVar("RecordT")


def _canonical_json(value: object) -> str:
    """Serializes a value the way the canonical database hash does."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


@dataclass(frozen=True)
class _Base:
    """The shared, read-only initial database of one ``db.json`` file.

    Attributes:
        tables: The records, per table name, in db.json order. Never mutated.
        canonical: The canonical JSON text of the whole database, as ASCII bytes.
        spans: Per table and record id, the ``(start, end)`` byte offsets of the
            record's canonical JSON within ``canonical``.
    """

    tables: dict[str, dict[str, Any]]
    canonical: bytes
    spans: dict[str, dict[str, tuple[int, int]]]


@functools.cache
def _load_base(path: Path) -> _Base:
    """Loads, canonicalizes and lays out a ``db.json`` file once per process.

    Args:
        path: The absolute path of the file.

    Returns:
        The shared base database.
    """
    tables: dict[str, dict[str, Any]] = json.loads(path.read_text(encoding="utf-8"), parse_int=float)
    for order in tables["orders"].values():
        for field in _OPTIONAL_ORDER_FIELDS:
            order.setdefault(field, None)

    # json.dumps(db, sort_keys=True) is the concatenation of the sorted tables and,
    # within each table, of the sorted records, so the text can be assembled piece
    # by piece while noting where each record lies. The text is ASCII (ensure_ascii),
    # so character offsets are byte offsets.
    chunks: list[str] = []
    spans: dict[str, dict[str, tuple[int, int]]] = {}
    offset = 0
    for table_index, table_name in enumerate(sorted(tables)):
        records = tables[table_name]
        table_spans = spans[table_name] = {}
        opening = f"{',' if table_index else '{'}{json.dumps(table_name)}:"
        for record_index, record_id in enumerate(sorted(records)):
            key = f"{',' if record_index else opening + '{'}{json.dumps(record_id)}:"
            text = _canonical_json(records[record_id])
            chunks += (key, text)
            offset += len(key)
            table_spans[record_id] = (offset, offset + len(text))
            offset += len(text)
        chunks.append("}")
        offset += 1
    chunks.append("}")
    return _Base(tables, "".join(chunks).encode("ascii"), spans)


class Table(Generic[RecordT]):
    """One table of a task's database: the shared base records plus a private overlay.

    Records returned by :meth:`get` and iteration may be shared with other tasks
    and must not be mutated; call :meth:`edit` to obtain a record that may be.
    """

    def __init__(self, base: Mapping[str, RecordT], missing_message: str) -> None:
        """Creates a table with no changes.

        Args:
            base: The shared records of the table, keyed by id.
            missing_message: The error message when an id does not exist.
        """
        self._base = base
        self._missing_message = missing_message
        self._overlay: dict[str, RecordT] = {}

    def get(self, record_id: str) -> RecordT:
        """Returns a record for reading.

        Args:
            record_id: The id of the record.

        Returns:
            The current record. It must not be mutated.

        Raises:
            RetailError: If no record has this id.
        """
        if record_id in self._overlay:
            return self._overlay[record_id]
        if record_id not in self._base:
            raise RetailError(self._missing_message)
        return self._base[record_id]

    def edit(self, record_id: str) -> RecordT:
        """Returns a record for modification, copying it into the overlay first.

        Args:
            record_id: The id of the record.

        Returns:
            The task's private copy of the record.

        Raises:
            RetailError: If no record has this id.
        """
        if record_id not in self._overlay:
            self._overlay[record_id] = copy.deepcopy(self.get(record_id))
        return self._overlay[record_id]

    def __iter__(self) -> Iterator[RecordT]:
        """Yields the current records in database order (read only)."""
        for record_id, record in self._base.items():
            yield self._overlay.get(record_id, record)

    def changed(self) -> dict[str, RecordT]:
        """Returns copies of the records that differ from the base, keyed by id."""
        return {
            record_id: copy.deepcopy(record)
            for record_id, record in self._overlay.items()
            if record != self._base[record_id]
        }

    def overlay(self) -> Mapping[str, RecordT]:
        """Returns the records copied into the overlay (changed or not), keyed by id."""
        return self._overlay


class RetailDB:
    """The database of one task: products, users and orders.

    Copies made with :meth:`load` or :meth:`fresh` share the same read-only base and
    never see each other's changes.
    """

    def __init__(self, base: _Base) -> None:
        """Creates an unchanged database on top of a base; use :meth:`load` instead.

        Args:
            base: The shared base database.
        """
        self._base = base
        self.products: Table[Product] = Table(base.tables["products"], "Product not found")
        self.users: Table[User] = Table(base.tables["users"], "User not found")
        self.orders: Table[Order] = Table(base.tables["orders"], "Order not found")

    @classmethod
    def load(cls, path: str | PathLike[str]) -> RetailDB:
        """Returns a new, unchanged copy of a database file.

        The file is read once per process; further copies are almost free.

        Args:
            path: The ``db.json`` file.

        Returns:
            A database that no other caller shares.
        """
        return cls(_load_base(Path(path).absolute()))

    @classmethod
    def fresh(cls) -> RetailDB:
        """Returns a new, unchanged copy of the example's ``data/db.json``."""
        return cls.load(DATA_DIR / "db.json")

    def _tables(self) -> dict[str, Table[Any]]:
        """Returns the tables keyed by name."""
        return {"products": self.products, "users": self.users, "orders": self.orders}

    def changed(self) -> dict[str, dict[str, Any]]:
        """Returns the records that differ from the initial database.

        Returns:
            Per table, the full changed records keyed by id; tables without changes
            are left out.
        """
        tables = {name: table.changed() for name, table in self._tables().items()}
        return {name: records for name, records in tables.items() if records}

    def canonical_sha256(self) -> str:
        """Returns the SHA-256 of the canonical JSON of the current database.

        The canonical JSON is ``json.dumps(db, sort_keys=True, separators=(",", ":"))``
        of the database with every optional order field present. Only the records
        in the overlay are serialized again; the rest comes from the base's text.

        Returns:
            The hex digest.
        """
        replacements = sorted(
            (
                *self._base.spans[name][record_id],
                _canonical_json(record).encode("ascii"),
            )
            for name, table in self._tables().items()
            for record_id, record in table.overlay().items()
        )
        text = memoryview(self._base.canonical)
        digest = hashlib.sha256()
        position = 0
        for start, end, record_text in replacements:
            digest.update(text[position:start])
            digest.update(record_text)
            position = end
        digest.update(text[position:])
        return digest.hexdigest()


class HasRetailDB(Protocol):
    """What the operations need from their context: the task's database."""

    @property
    def db(self) -> RetailDB:
        """The database of the current task."""
        ...


# --------------------------------------------------------------------------- #
# Helpers shared by the operations
# --------------------------------------------------------------------------- #


def _dump(record: Mapping[str, Any]) -> str:
    """Formats a record as a tool output."""
    return json.dumps(record)


def _address(address1: str, address2: str, city: str, state: str, country: str, zip: str) -> Address:
    """Builds an address with its fields in schema order."""
    return {
        "address1": address1,
        "address2": address2,
        "city": city,
        "country": country,
        "state": state,
        "zip": zip,
    }


def _payment_method(db: RetailDB, order: Order, payment_method_id: str) -> PaymentMethod:
    """Looks up a payment method among those of the order's user.

    Raises:
        RetailError: ``Payment method not found``.
    """
    methods = db.users.get(order["user_id"])["payment_methods"]
    if payment_method_id not in methods:
        raise RetailError("Payment method not found")
    return methods[payment_method_id]


def _credit_gift_card(db: RetailDB, order: Order, payment_method_id: str, amount: float) -> None:
    """Adds an amount (negative to debit) to a gift card of the order's user.

    Does nothing if the method is not a gift card. The balance is rounded to cents.
    """
    if _payment_method(db, order, payment_method_id)["source"] == "gift_card":
        methods = db.users.edit(order["user_id"])["payment_methods"]
        gift_card = cast(GiftCard, methods[payment_method_id])
        gift_card["balance"] = round(gift_card["balance"] + amount, 2)


def _check_item_counts(order: Order, item_ids: list[str], message: str) -> None:
    """Checks that no id occurs in ``item_ids`` more often than in the order.

    Args:
        order: The order.
        item_ids: The requested item ids, possibly repeated.
        message: The error message; ``{}`` is replaced with the offending id.

    Raises:
        RetailError: With ``message``.
    """
    order_item_ids = [item["item_id"] for item in order["items"]]
    for item_id in item_ids:
        if item_ids.count(item_id) > order_item_ids.count(item_id):
            raise RetailError(message.format(item_id))


def _first_item(order: Order, item_id: str) -> OrderItem:
    """Returns the first item of the order with this id (known to exist)."""
    return next(item for item in order["items"] if item["item_id"] == item_id)


def _new_variants(
    db: RetailDB,
    order: Order,
    item_ids: list[str],
    new_item_ids: list[str],
    *,
    allow_same_item: bool,
) -> tuple[list[Variant], float]:
    """Checks the replacement items pair by pair and sums the price difference.

    Args:
        db: The database.
        order: The order, whose item counts are already checked.
        item_ids: The items to replace.
        new_item_ids: Their replacements, pair by pair (same length).
        allow_same_item: Whether an item may be replaced by itself.

    Returns:
        The new variants, and the unrounded sum of (new price - old price), where
        the old price is that of the first order item with the old id.

    Raises:
        RetailError: If a new item is the old one (when not allowed), is not a
            variant of the old item's product, or is unavailable.
    """
    variants: list[Variant] = []
    difference = 0.0
    for item_id, new_item_id in zip(item_ids, new_item_ids, strict=True):
        if not allow_same_item and item_id == new_item_id:
            raise RetailError("The new item id should be different from the old item id")
        item = _first_item(order, item_id)
        product_variants = db.products.get(item["product_id"])["variants"]
        if new_item_id not in product_variants:
            raise RetailError("Variant not found")
        variant = product_variants[new_item_id]
        if not variant["available"]:
            raise RetailError(f"New item {new_item_id} not found or available")
        variants.append(variant)
        # Summed pair by pair like the reference (not with sum(), which compensates
        # rounding errors on Python 3.12+).
        difference += variant["price"] - item["price"]
    return variants, difference


def _check_gift_card_balance(method: PaymentMethod, amount: float, message: str) -> None:
    """Checks that a gift card can pay an amount; other methods always can.

    Raises:
        RetailError: With ``message``.
    """
    if method["source"] == "gift_card" and method["balance"] < amount:
        raise RetailError(message)


# --------------------------------------------------------------------------- #
# Read and generic operations
# --------------------------------------------------------------------------- #


def find_user_id_by_email(ctx: HasRetailDB, email: str) -> str:
    """Find a user id by email address. Fails if no user has this email.

    Args:
        email: The email address of the user, such as 'something@example.com'.
    """
    for user in ctx.db.users:
        if user["email"].lower() == email.lower():
            return user["user_id"]
    raise RetailError("User not found")


def find_user_id_by_name_zip(ctx: HasRetailDB, first_name: str, last_name: str, zip: str) -> str:
    """Find a user id by first name, last name and zip code. Fails if no user matches.
    Look the user up by email first, and use this only if the user cannot be found by
    email or does not remember it.

    Args:
        first_name: The first name of the user, such as 'John'.
        last_name: The last name of the user, such as 'Doe'.
        zip: The zip code of the user's address, such as '12345'.
    """
    for user in ctx.db.users:
        name = user["name"]
        if (
            name["first_name"].lower() == first_name.lower()
            and name["last_name"].lower() == last_name.lower()
            and user["address"]["zip"] == zip
        ):
            return user["user_id"]
    raise RetailError("User not found")


def get_user_details(ctx: HasRetailDB, user_id: str) -> str:
    """Get the details of a user: name, address, email, payment methods and order ids.

    Args:
        user_id: The user id, such as 'sara_doe_496'.
    """
    return _dump(ctx.db.users.get(user_id))


def get_order_details(ctx: HasRetailDB, order_id: str) -> str:
    """Get the status and details of an order: items, fulfillments and payments.

    Args:
        order_id: The order id, such as '#W0000000'. Note the '#' at the start of the
            order id.
    """
    return _dump(ctx.db.orders.get(order_id))


def get_product_details(ctx: HasRetailDB, product_id: str) -> str:
    """Get a product with all its variant items: their options, availability and price.

    Args:
        product_id: The product id, such as '6086499569'. A product id is not an item
            id: each item of an order has both.
    """
    return _dump(ctx.db.products.get(product_id))


def list_all_product_types(ctx: HasRetailDB) -> str:
    """List the name and product id of every product type in the store (there are 50).
    Each product type has many variant items, each with its own item id and options.
    """
    return json.dumps(
        {product["name"]: product["product_id"] for product in ctx.db.products},
        sort_keys=True,
    )


_BINARY_OPERATORS: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
}
_UNARY_OPERATORS: dict[type[ast.unaryop], Callable[[Any], Any]] = {
    ast.UAdd: operator.pos,
    ast.USub: operator.neg,
}


def _evaluate(node: ast.expr) -> float:
    """Evaluates an arithmetic syntax tree with Python's int and float semantics.

    Raises:
        RetailError: If the tree holds anything but numbers and + - * /.
    """
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return cast(float, node.value)
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY_OPERATORS:
        return cast(
            float,
            _BINARY_OPERATORS[type(node.op)](_evaluate(node.left), _evaluate(node.right)),
        )
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY_OPERATORS:
        return cast(float, _UNARY_OPERATORS[type(node.op)](_evaluate(node.operand)))
    raise RetailError("Only numbers, +, -, *, / and parentheses are supported")


def calculate(ctx: HasRetailDB, expression: str) -> str:
    """Calculate the result of an arithmetic expression, rounded to 2 decimals.

    Args:
        expression: The expression to calculate, such as '2 + 2'. It may contain only
            numbers, the operators +, -, *, /, parentheses and spaces.
    """
    if not all(char in "0123456789+-*/(). " for char in expression):
        raise RetailError("Invalid characters in expression")
    try:
        # Parsed like eval(), which ignores leading spaces.
        tree = ast.parse(expression.lstrip(" "), filename="<string>", mode="eval")
        return str(round(float(_evaluate(tree.body)), 2))
    except (SyntaxError, RecursionError, ZeroDivisionError, OverflowError) as exc:
        raise RetailError(str(exc)) from exc


def transfer_to_human_agents(ctx: HasRetailDB, summary: str) -> str:
    """Transfer the user to a human agent, with a summary of the user's issue. Transfer
    only if the user explicitly asks for a human agent, or if the user's issue cannot be
    solved with the policy and the available tools.

    Args:
        summary: A summary of the user's issue.
    """
    return "Transfer successful"


# --------------------------------------------------------------------------- #
# Write operations: all checks come first, then the changes.
# --------------------------------------------------------------------------- #


def cancel_pending_order(ctx: HasRetailDB, order_id: str, reason: str) -> str:
    """Cancel a pending order and refund its payments; returns the cancelled order. Only
    orders with status 'pending' can be cancelled. Explain the cancellation details and
    ask for explicit user confirmation (yes) before calling. Payments made with a gift
    card are refunded to it immediately; other refunds take 5 to 7 business days.

    Args:
        order_id: The order id, such as '#W0000000'. Note the '#' at the start of the
            order id.
        reason: The reason for the cancellation: either 'no longer needed' or
            'ordered by mistake'.
    """
    db = ctx.db
    order = db.orders.get(order_id)
    if order["status"] != "pending":
        raise RetailError("Non-pending order cannot be cancelled")
    if reason not in ("no longer needed", "ordered by mistake"):
        raise RetailError("Invalid reason")
    for payment in order["payment_history"]:
        _payment_method(db, order, payment["payment_method_id"])

    order = db.orders.edit(order_id)
    refunds: list[Payment] = [
        {
            "transaction_type": "refund",
            "amount": payment["amount"],
            "payment_method_id": payment["payment_method_id"],
        }
        for payment in order["payment_history"]
    ]
    for refund in refunds:
        _credit_gift_card(db, order, refund["payment_method_id"], refund["amount"])
    order["status"] = "cancelled"
    order["cancel_reason"] = reason
    order["payment_history"] += refunds
    return _dump(order)


def modify_pending_order_address(
    ctx: HasRetailDB,
    order_id: str,
    address1: str,
    address2: str,
    city: str,
    state: str,
    country: str,
    zip: str,
) -> str:
    """Change the shipping address of a pending order; returns the modified order.
    Explain the modification details and ask for explicit user confirmation (yes) before
    calling.

    Args:
        order_id: The order id, such as '#W0000000'. Note the '#' at the start of the
            order id.
        address1: The first line of the address, such as '123 Main St'.
        address2: The second line of the address, such as 'Apt 1', or ''.
        city: The city, such as 'San Francisco'.
        state: The state, such as 'CA'.
        country: The country, such as 'USA'.
        zip: The zip code, such as '12345'.
    """
    db = ctx.db
    if "pending" not in db.orders.get(order_id)["status"]:
        raise RetailError("Non-pending order cannot be modified")

    order = db.orders.edit(order_id)
    order["address"] = _address(address1, address2, city, state, country, zip)
    return _dump(order)


def modify_pending_order_payment(ctx: HasRetailDB, order_id: str, payment_method_id: str) -> str:
    """Pay a pending order with another payment method of the user; returns the order.
    The order must have a single payment, and a gift card must have enough balance for
    the whole amount. The original method is refunded: immediately for a gift card,
    otherwise within 5 to 7 business days. Explain the modification details and ask for
    explicit user confirmation (yes) before calling.

    Args:
        order_id: The order id, such as '#W0000000'. Note the '#' at the start of the
            order id.
        payment_method_id: The id of the new payment method, such as
            'gift_card_0000000' or 'credit_card_0000000'; it must differ from the
            current one. Payment method ids are in the user's details.
    """
    db = ctx.db
    order = db.orders.get(order_id)
    if "pending" not in order["status"]:
        raise RetailError("Non-pending order cannot be modified")
    method = _payment_method(db, order, payment_method_id)
    history = order["payment_history"]
    if len(history) != 1 or history[0]["transaction_type"] != "payment":
        raise RetailError("There should be exactly one payment for a pending order")
    old_method_id = history[0]["payment_method_id"]
    if old_method_id == payment_method_id:
        raise RetailError("The new payment method should be different from the current one")
    amount = history[0]["amount"]
    _check_gift_card_balance(method, amount, "Insufficient gift card balance to pay for the order")
    _payment_method(db, order, old_method_id)

    order = db.orders.edit(order_id)
    order["payment_history"] += [
        {
            "transaction_type": "payment",
            "amount": amount,
            "payment_method_id": payment_method_id,
        },
        {
            "transaction_type": "refund",
            "amount": amount,
            "payment_method_id": old_method_id,
        },
    ]
    _credit_gift_card(db, order, payment_method_id, -amount)
    _credit_gift_card(db, order, old_method_id, amount)
    return _dump(order)


def modify_pending_order_items(
    ctx: HasRetailDB,
    order_id: str,
    item_ids: list[str],
    new_item_ids: list[str],
    payment_method_id: str,
) -> str:
    """Replace items of a pending order with other variants of the same products. This
    can be done only once per order: its status becomes 'pending (item modified)', after
    which it can no longer be modified or cancelled, so collect all the items to change
    first. The price difference is charged or refunded to the given payment method.
    Explain the details and ask for explicit user confirmation (yes) before calling.
    Returns the modified order.

    Args:
        order_id: The order id, such as '#W0000000'. Note the '#' at the start of the
            order id.
        item_ids: The ids of the items to replace, each such as '1008292230'. An id
            may be repeated if the order holds that item several times.
        new_item_ids: The ids of the new items, each such as '1008292230', in the
            same order as item_ids: each must be an available variant of the same
            product as the item at the same position, and differ from it.
        payment_method_id: The id of the payment method that pays or receives the
            price difference, such as 'gift_card_0000000' or 'credit_card_0000000'.
            A gift card must have enough balance. Payment method ids are in the
            user's details.
    """
    db = ctx.db
    order = db.orders.get(order_id)
    if order["status"] != "pending":
        raise RetailError("Non-pending order cannot be modified")
    _check_item_counts(order, item_ids, "{} not found")
    if len(item_ids) != len(new_item_ids):
        raise RetailError("The number of items to be exchanged should match")
    variants, difference = _new_variants(db, order, item_ids, new_item_ids, allow_same_item=False)
    method = _payment_method(db, order, payment_method_id)
    _check_gift_card_balance(method, difference, "Insufficient gift card balance to pay for the new item")

    order = db.orders.edit(order_id)
    order["payment_history"].append(
        {
            "transaction_type": "payment" if difference > 0 else "refund",
            "amount": abs(difference),
            "payment_method_id": payment_method_id,
        }
    )
    _credit_gift_card(db, order, payment_method_id, -difference)
    # Like the reference, every replaced item takes the price and options of the
    # last new variant.
    for item_id, new_item_id in zip(item_ids, new_item_ids, strict=True):
        item = _first_item(order, item_id)
        item["item_id"] = new_item_id
        item["price"] = variants[-1]["price"]
        item["options"] = dict(variants[-1]["options"])
    order["status"] = "pending (item modified)"
    return _dump(order)


def modify_user_address(
    ctx: HasRetailDB,
    user_id: str,
    address1: str,
    address2: str,
    city: str,
    state: str,
    country: str,
    zip: str,
) -> str:
    """Change the default address of a user; returns the modified user. Existing orders
    keep their shipping addresses. Explain the modification details and ask for explicit
    user confirmation (yes) before calling.

    Args:
        user_id: The user id, such as 'sara_doe_496'.
        address1: The first line of the address, such as '123 Main St'.
        address2: The second line of the address, such as 'Apt 1', or ''.
        city: The city, such as 'San Francisco'.
        state: The state, such as 'CA'.
        country: The country, such as 'USA'.
        zip: The zip code, such as '12345'.
    """
    user = ctx.db.users.edit(user_id)
    user["address"] = _address(address1, address2, city, state, country, zip)
    return _dump(user)


def return_delivered_order_items(
    ctx: HasRetailDB,
    order_id: str,
    item_ids: list[str],
    payment_method_id: str,
) -> str:
    """Request the return of items of a delivered order; returns the modified order. The
    order status becomes 'return requested' and the user receives an email explaining
    how and where to return the items. An order can be returned or exchanged only once.
    Explain the return details and ask for explicit user confirmation (yes) before
    calling.

    Args:
        order_id: The order id, such as '#W0000000'. Note the '#' at the start of the
            order id.
        item_ids: The ids of the items to return, each such as '1008292230'. An id
            may be repeated if the order holds that item several times.
        payment_method_id: The id of the payment method that receives the refund,
            such as 'gift_card_0000000' or 'credit_card_0000000': either the
            original payment method of the order or a gift card of the user.
    """
    db = ctx.db
    order = db.orders.get(order_id)
    if order["status"] != "delivered":
        raise RetailError("Non-delivered order cannot be returned")
    method = _payment_method(db, order, payment_method_id)
    if method["source"] != "gift_card" and payment_method_id != order["payment_history"][0]["payment_method_id"]:
        raise RetailError("Payment method should be the original payment method")
    _check_item_counts(order, item_ids, "Some item not found")

    order = db.orders.edit(order_id)
    order["status"] = "return requested"
    order["return_items"] = sorted(item_ids)
    order["return_payment_method_id"] = payment_method_id
    return _dump(order)


def exchange_delivered_order_items(
    ctx: HasRetailDB,
    order_id: str,
    item_ids: list[str],
    new_item_ids: list[str],
    payment_method_id: str,
) -> str:
    """Request an exchange of items of a delivered order for other variants of the same
    products. The order status becomes 'exchange requested' and the user receives an
    email explaining how to return the items; no new order is needed. An order can be
    returned or exchanged only once, so collect all the items to exchange first. Explain
    the exchange details and ask for explicit user confirmation (yes) before calling.
    Returns the modified order.

    Args:
        order_id: The order id, such as '#W0000000'. Note the '#' at the start of the
            order id.
        item_ids: The ids of the items to exchange, each such as '1008292230'. An id
            may be repeated if the order holds that item several times.
        new_item_ids: The ids of the new items, each such as '1008292230', in the
            same order as item_ids: each must be an available variant of the same
            product as the item at the same position.
        payment_method_id: The id of the payment method that pays or receives the
            price difference, such as 'gift_card_0000000' or 'credit_card_0000000'.
            A gift card must have enough balance. Payment method ids are in the
            user's details.
    """
    db = ctx.db
    order = db.orders.get(order_id)
    if order["status"] != "delivered":
        raise RetailError("Non-delivered order cannot be exchanged")
    _check_item_counts(order, item_ids, "Number of {} not found.")
    if len(item_ids) != len(new_item_ids):
        raise RetailError("The number of items to be exchanged should match.")
    _, difference = _new_variants(db, order, item_ids, new_item_ids, allow_same_item=True)
    difference = round(difference, 2)
    method = _payment_method(db, order, payment_method_id)
    _check_gift_card_balance(
        method,
        difference,
        "Insufficient gift card balance to pay for the price difference",
    )

    order = db.orders.edit(order_id)
    order["status"] = "exchange requested"
    order["exchange_items"] = sorted(item_ids)
    order["exchange_new_items"] = sorted(new_item_ids)
    order["exchange_payment_method_id"] = payment_method_id
    order["exchange_price_difference"] = difference
    return _dump(order)


READ_OPERATIONS: tuple[Callable[..., str], ...] = (
    find_user_id_by_email,
    find_user_id_by_name_zip,
    get_user_details,
    get_order_details,
    get_product_details,
    list_all_product_types,
    calculate,
    transfer_to_human_agents,
)
"""The operations that never change the database."""

WRITE_OPERATIONS: tuple[Callable[..., str], ...] = (
    cancel_pending_order,
    modify_pending_order_address,
    modify_pending_order_payment,
    modify_pending_order_items,
    modify_user_address,
    return_delivered_order_items,
    exchange_delivered_order_items,
)
"""The operations that change the database."""

ALL_OPERATIONS: tuple[Callable[..., str], ...] = READ_OPERATIONS + WRITE_OPERATIONS
"""All 15 retail operations."""
