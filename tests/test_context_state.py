"""Context state: the split into checkpointed state and re-created resources, dumped as JSON and restored."""

from __future__ import annotations

import copy
import decimal
import enum
import gc
import json
import pickle
import sqlite3
import threading
import weakref
from dataclasses import InitVar, dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import TYPE_CHECKING, Annotated, Any

import pydantic
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cogent import ExecutionContext, RunContext, TimedContext
from cogent._context_state import context_layout, dump_state, load_state, restore
from cogent._resources import Resource
from cogent.exceptions import UserError

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping


class Tier(enum.Enum):
    """A user's plan."""

    FREE = "free"
    PRO = "pro"


@dataclass(frozen=True)
class Address:
    """A nested dataclass."""

    city: str
    since: datetime


class Preferences(pydantic.BaseModel):
    """A nested pydantic model."""

    language: str
    limits: dict[str, int]


@dataclass(frozen=True)
class RichContext(ExecutionContext):
    """A frozen context with one field of every kind a state holds, and resources."""

    user_id: str
    permissions: frozenset[str] = frozenset()
    roles: set[str] = field(default_factory=set)
    scores: tuple[float, ...] = ()
    tier: Tier = Tier.FREE
    balance: decimal.Decimal = decimal.Decimal(0)
    address: Address | None = None
    preferences: Preferences | None = None
    blob: bytes = b""
    expires: timedelta = timedelta(0)
    api_token: str = ""
    connection: Annotated[sqlite3.Connection | None, Resource] = field(default=None, compare=False)
    lock: Annotated[Any, Resource] = field(default_factory=threading.Lock, compare=False)


@dataclass(slots=True)
class SlottedContext(RunContext):
    """A slotted context with required fields."""

    tenant_id: str
    quota: int


@pydantic.dataclasses.dataclass
class ValidatedContext(TimedContext):
    """A pydantic dataclass context."""

    account: str
    limit: int = 10


@dataclass
class DatabaseContext(RunContext):
    """The README's context: a user id and a live database connection."""

    user_id: str
    db: Annotated[sqlite3.Connection, Resource]


aware = st.datetimes(
    min_value=datetime(1970, 1, 2),
    max_value=datetime(2200, 1, 1),
    timezones=st.sampled_from([UTC, timezone(timedelta(hours=5, minutes=30)), timezone(-timedelta(hours=8))]),
)
text = st.text(max_size=12)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | text,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(text, children, max_size=3),
    max_leaves=8,
)
rich_contexts = st.builds(
    RichContext,
    user_id=text,
    query=text,
    metadata=st.dictionaries(text, json_values, max_size=4),
    task_id=text,
    parent_task_id=st.none() | text,
    task_chain=st.lists(text, max_size=3),
    depth=st.integers(0, 10),
    max_depth=st.integers(0, 10),
    retry_count=st.integers(0, 5),
    max_retries=st.integers(0, 5),
    is_retry=st.booleans(),
    started_at=aware,
    deadline=st.none() | aware,
    permissions=st.frozensets(text, max_size=3),
    roles=st.sets(text, max_size=3),
    scores=st.lists(st.floats(allow_nan=False), max_size=3).map(tuple),
    tier=st.sampled_from(Tier),
    balance=st.decimals(allow_nan=False, allow_infinity=False, places=2),
    address=st.none() | st.builds(Address, city=text, since=aware),
    preferences=st.none()
    | st.builds(Preferences, language=text, limits=st.dictionaries(text, st.integers(), max_size=2)),
    blob=st.binary(max_size=16),
    expires=st.timedeltas(min_value=timedelta(days=-5), max_value=timedelta(days=5)),
    api_token=text,
)


def _state(context: RunContext) -> dict[str, Any]:
    """Return the values of the context's state fields, by name."""
    return {name: getattr(context, name) for name in context_layout(type(context)).state_fields}


@settings(max_examples=60, deadline=None)
@given(rich_contexts)
def test_a_dumped_state_restores_to_an_equal_context_with_the_same_types(context: RichContext) -> None:
    """Property: restore(dump) equals the original, field by field, with every value of its original type."""
    restored = restore(RichContext, dump_state(context))
    assert restored == context
    for name, value in _state(context).items():
        assert type(getattr(restored, name)) is type(value), name
    for name in ("started_at", "deadline"):
        value = getattr(restored, name)
        assert value is None or value.utcoffset() == getattr(context, name).utcoffset()


@settings(max_examples=30, deadline=None)
@given(tenant_id=text, quota=st.integers(), metadata=st.dictionaries(text, json_values, max_size=3))
def test_slotted_contexts_round_trip(tenant_id: str, quota: int, metadata: dict[str, Any]) -> None:
    """Property: a `slots=True` context with required fields round-trips."""
    context = SlottedContext(tenant_id, quota, metadata=metadata)
    assert restore(SlottedContext, dump_state(context)) == context


@settings(max_examples=30, deadline=None)
@given(account=text, limit=st.integers(), started_at=aware, deadline=st.none() | aware)
def test_pydantic_dataclass_contexts_round_trip(account: str, limit: int, started_at: datetime, deadline: Any) -> None:
    """Property: a pydantic dataclass context (validated on restore) round-trips."""
    context = ValidatedContext(account=account, limit=limit, started_at=started_at, deadline=deadline)
    assert restore(ValidatedContext, dump_state(context)) == context


def test_every_helper_field_is_state_and_agent_is_neither() -> None:
    """The helper contexts' fields are all checkpointed; `agent` (init=False) is neither state nor resource."""
    layout = context_layout(ExecutionContext)
    helper_fields = {
        "task_id",
        "parent_task_id",
        "task_chain",
        "depth",
        "max_depth",
        "retry_count",
        "max_retries",
        "is_retry",
        "started_at",
        "deadline",
    }
    assert set(layout.state_fields) == {"query", "metadata"} | helper_fields
    assert layout.resource_fields == ()
    assert restore(ExecutionContext, dump_state(ExecutionContext())).agent is None


def test_resources_never_reach_the_dump() -> None:
    """Resource fields are absent from the JSON, by name and by value; every state field is present."""
    connection = sqlite3.connect(":memory:")
    context = RichContext(user_id="u1", connection=connection, api_token="tok-123")
    dumped = json.loads(dump_state(context))
    assert set(dumped) == set(context_layout(RichContext).state_fields)
    assert "connection" not in dumped and "lock" not in dumped
    assert dumped["user_id"] == "u1"
    connection.close()


def test_a_live_sqlite_connection_is_replaced_by_a_fresh_one_with_the_same_state(tmp_path: Any) -> None:
    """A context holding a live sqlite3 connection restores with a new connection from the factory and equal state."""
    path = str(tmp_path / "app.db")
    original = DatabaseContext(user_id="u7", db=sqlite3.connect(path), metadata={"request": "r-1"})
    original.db.execute("create table orders (user_id text)")
    original.db.execute("insert into orders values ('u7')")
    original.db.commit()
    seen: list[Mapping[str, Any]] = []

    def reconnect(state: Mapping[str, Any]) -> dict[str, Any]:
        seen.append(dict(state))
        return {"db": sqlite3.connect(path)}

    restored = restore(DatabaseContext, dump_state(original), resources=reconnect)
    assert restored.db is not original.db
    assert _state(restored) == _state(original)
    assert restored.db.execute("select user_id from orders").fetchall() == [("u7",)]
    assert seen == [{"query": "", "metadata": {"request": "r-1"}, "user_id": "u7"}]
    original.db.close()
    restored.db.close()


def test_the_factory_sees_the_restored_state_read_only() -> None:
    """The resource factory receives typed values in a mapping it cannot modify."""
    received: list[Any] = []

    def factory(state: Mapping[str, Any]) -> dict[str, Any]:
        received.append(state["started_at"])
        with pytest.raises(TypeError):
            state["user_id"] = "other"  # type: ignore[index]
        return {}

    restore(RichContext, dump_state(RichContext(user_id="u")), resources=factory)
    assert isinstance(received[0], datetime) and received[0].tzinfo is not None


def test_resource_defaults_are_recreated_when_the_factory_leaves_them_out() -> None:
    """A resource with a default factory gets a fresh value on restore; with no factory at all too."""
    context = RichContext(user_id="u")
    restored = restore(RichContext, dump_state(context))
    assert restored.lock is not context.lock
    assert restored.connection is None


def test_unserializable_state_fields_are_one_error_naming_each_field() -> None:
    """Every field that cannot be state is named, with the Resource fix, in one UserError, before any dump."""

    @dataclass
    class Careless(RunContext):
        user_id: str
        db: sqlite3.Connection
        on_done: Callable[[], None]
        model_class: type[pydantic.BaseModel]

    with pytest.raises(UserError) as caught:
        context_layout(Careless)
    message = str(caught.value)
    for name in ("'db'", "'on_done'", "'model_class'"):
        assert name in message
    assert "'user_id'" not in message
    assert "Annotated[Connection, Resource]" in message
    with pytest.raises(UserError):
        dump_state(
            Careless(user_id="u", db=sqlite3.connect(":memory:"), on_done=lambda: None, model_class=pydantic.BaseModel)
        )


def test_a_nested_marker_and_a_required_init_var_are_reported() -> None:
    """A Resource marker inside `| None` and an InitVar without default are both named in one error."""

    @dataclass
    class Misplaced(RunContext):
        db: Annotated[sqlite3.Connection, Resource] | None = None
        seed: InitVar[int] = field(kw_only=True)  # type: ignore[assignment]

        def __post_init__(self, seed: int) -> None:
            pass

    with pytest.raises(UserError) as caught:
        context_layout(Misplaced)
    assert "'db'" in str(caught.value) and "top level" in str(caught.value)
    assert "'seed'" in str(caught.value)


def test_an_unresolvable_annotation_names_its_field() -> None:
    """A field annotated with a name that exists only under TYPE_CHECKING is a UserError naming the field."""
    namespace: dict[str, Any] = {}
    exec(
        "from __future__ import annotations\n"
        "from dataclasses import dataclass\n"
        "from cogent import RunContext\n"
        "@dataclass\n"
        "class Hidden(RunContext):\n"
        "    user_id: str = ''\n"
        "    client: HttpClient | None = None\n",
        namespace,
    )
    with pytest.raises(UserError) as caught:
        context_layout(namespace["Hidden"])
    assert "'client'" in str(caught.value) and "'user_id'" not in str(caught.value)


def test_metadata_values_must_be_plain_json_and_each_bad_key_is_named() -> None:
    """A datetime, a set, a non-string key or NaN in metadata is a UserError naming each key, never the value."""
    context = RichContext(
        user_id="u",
        metadata={
            "when": datetime.now(UTC),
            "ok": [1, {"x": None}],
            "nested": {"ids": {1, 2}},
            3: "x",
            "ratio": float("nan"),
            "password": object(),
        },
    )
    with pytest.raises(UserError) as caught:
        dump_state(context)
    message = str(caught.value)
    for path in (
        "metadata['when']",
        "metadata['nested']['ids']",
        "key of type int",
        "metadata['ratio']",
        "metadata['password']",
    ):
        assert path in message
    assert "metadata['ok']" not in message
    assert "object at" not in message


def test_a_value_of_the_wrong_type_is_named_without_printing_it() -> None:
    """A state value that does not fit its annotation (dataclasses do not validate) names the field, not the value."""
    context = RichContext(user_id=12345, api_token=b"secret-bytes")  # type: ignore[arg-type]
    with pytest.raises(UserError) as caught:
        dump_state(context)
    message = str(caught.value)
    assert "'user_id'" in message and "'api_token'" in message
    assert "secret-bytes" not in message and "12345" not in message


def test_secret_named_state_is_checkpointed_unless_marked_a_resource() -> None:
    """A secret-named state field is in the dump (documented); marked a resource, it is not."""

    @dataclass
    class WithKey(RunContext):
        api_key: Annotated[str, Resource] = ""

    assert "tok-123" in dump_state(RichContext(user_id="u", api_token="tok-123"))
    assert "k-456" not in dump_state(WithKey(api_key="k-456"))
    assert (
        restore(WithKey, dump_state(WithKey(api_key="k-456")), resources=lambda s: {"api_key": "k-789"}).api_key
        == "k-789"
    )


def test_restore_refuses_state_of_another_class_or_corrupted_text() -> None:
    """State of another class, changed fields, or text that is not JSON is a UserError that echoes no value."""
    other = dump_state(SlottedContext("t-secret", 3))
    for bad in (other, "{not json", "[]", dump_state(RichContext(user_id="u"))[:-1]):
        with pytest.raises(UserError) as caught:
            restore(RichContext, bad)
        assert "t-secret" not in str(caught.value)
    with pytest.raises(UserError, match="tenant_id"):
        restore(SlottedContext, json.dumps({**json.loads(other), "tenant_id": 5}))


def test_load_state_updates_a_live_context_in_place_and_keeps_its_resources() -> None:
    """`load_state` sets every state field of the same (frozen) object from a dump; resources and identity stay."""
    connection = sqlite3.connect(":memory:")
    live = RichContext(user_id="u", connection=connection, metadata={"turn": 1})
    later = RichContext(user_id="u", roles={"admin"}, depth=2, metadata={"turn": 2}, task_id=live.task_id)
    load_state(live, dump_state(later))
    assert _state(live) == _state(later)
    assert live.connection is connection
    with pytest.raises(UserError):
        load_state(live, dump_state(SlottedContext("t", 1)))
    assert _state(live) == _state(later)  # a refused state changes nothing
    with pytest.raises(UserError):
        load_state("not a context", dump_state(later))  # type: ignore[arg-type]
    connection.close()


def test_restore_checks_the_resources_returned() -> None:
    """Unknown names, a missing required resource, or a factory returning a non-mapping are UserErrors naming them."""
    state = dump_state(DatabaseContext(user_id="u", db=sqlite3.connect(":memory:")))
    with pytest.raises(UserError, match="'db'"):
        restore(DatabaseContext, state)
    with pytest.raises(UserError, match="'user_id'"):
        restore(DatabaseContext, state, resources=lambda s: {"db": sqlite3.connect(":memory:"), "user_id": "x"})
    with pytest.raises(UserError, match="'cache'"):
        restore(DatabaseContext, state, resources=lambda s: {"db": sqlite3.connect(":memory:"), "cache": {}})
    with pytest.raises(UserError, match="mapping"):
        restore(DatabaseContext, state, resources=lambda s: [("db", None)])  # type: ignore[arg-type,return-value]


def test_layouts_are_computed_once_and_do_not_keep_classes_alive() -> None:
    """The same layout object is returned for a class; a class that goes away takes its layout with it."""
    assert context_layout(RichContext) is context_layout(RichContext)

    def make() -> weakref.ref[type[RunContext]]:
        @dataclass
        class Temporary(RunContext):
            user_id: str = ""

        context_layout(Temporary)
        return weakref.ref(Temporary)

    ref = make()

    @dataclass
    class Later(RunContext):  # cogent.context remembers the class last defined; this releases Temporary
        pass

    gc.collect()
    assert ref() is None


def test_only_runcontext_dataclasses_have_a_layout() -> None:
    """A non-context class, a non-context object, or a subclass without its own @dataclass is a UserError."""

    class Undecorated(RunContext):
        user_id: str = ""

    for bad in (dict, Undecorated):
        with pytest.raises(UserError):
            context_layout(bad)  # type: ignore[arg-type]
    with pytest.raises(UserError):
        dump_state({"query": ""})  # type: ignore[arg-type]


def test_the_marker_is_one_object_that_survives_copies_and_pickling() -> None:
    """`Resource()` is a TypeError saying how to write the marker; copies and pickles of it are the marker itself."""
    with pytest.raises(TypeError, match=r"Annotated\[T, Resource\]"):
        Resource()  # type: ignore[operator]
    assert copy.deepcopy(Resource) is Resource
    assert pickle.loads(pickle.dumps(Resource)) is Resource
    assert repr(Resource) == "Resource"
