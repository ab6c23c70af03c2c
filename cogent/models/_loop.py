"""Resources that belong to one event loop (HTTP clients and their sockets), and their cleanup.

An HTTP client's connection pool belongs to the event loop that opened it: a model used on
several loops (successive `agent.run_sync()` calls, each on a new loop, or a loop per test)
needs one client per loop, and each must be closed while its loop still runs.

- `LoopClients` holds one client per event loop for a provider: created on first use,
  closed by `aclose()` (the model's), or by `close_loop_resources()` at the end of the loop.
  Clients of loops that have finished without that call are dropped the next time a client
  is created, so nothing accumulates across loops.
- `register_loop_cleanup(callback)` runs `callback` when `close_loop_resources()` is awaited
  on the current loop. The registry keeps no object alive: bound methods are held weakly.
- `close_loop_resources()` closes what providers opened on the current loop. `run_sync` calls
  it before the loop it created ends; call it yourself at the end of a loop you run (a loop
  per test, a worker thread's loop) to close sockets at once rather than at garbage collection.
"""

from __future__ import annotations

import weakref
from collections.abc import Awaitable, Callable
from types import MethodType
from typing import Generic, TypeVar

import anyio
from anyio.lowlevel import RunVar, current_token

__all__ = ["LoopClients", "PassedClient", "close_loop_resources", "register_loop_cleanup"]

C = TypeVar("C")

_Callback = Callable[[], Awaitable[object]]

_cleanups: RunVar[dict[object, None]] = RunVar("cogent_loop_cleanups")
"""Per event loop: the registered callbacks (or weak references to bound methods), in order."""


def register_loop_cleanup(callback: _Callback) -> None:
    """Run `callback` when `close_loop_resources()` is awaited on the current event loop.

    Registering the same callback twice on one loop runs it once. A bound method is held
    weakly, so registering never keeps its object (a model and its clients) alive; any other
    callable is held until the loop's resources are closed, so it must not refer to them.

    Args:
        callback: An async callable without arguments.

    Raises:
        RuntimeError: If no event loop is running in this thread (anyio's error).
    """
    key: object = weakref.WeakMethod(callback) if isinstance(callback, MethodType) else callback
    try:
        callbacks = _cleanups.get()
    except LookupError:
        callbacks = {}
        _cleanups.set(callbacks)
    callbacks[key] = None


async def close_loop_resources() -> None:
    """Close the resources that models opened on the current event loop (their HTTP clients).

    Runs every callback registered on this loop with `register_loop_cleanup`, in order,
    shielded from cancellation; a callback that fails does not stop the others. The models
    stay usable: a later request on a new loop opens a new client.

    Raises:
        RuntimeError: If no event loop is running in this thread (anyio's error).
        Exception: The first error a callback raised, after all callbacks ran.
    """
    callbacks = _cleanups.get({})
    _cleanups.set({})
    first_error: Exception | None = None
    with anyio.CancelScope(shield=True):
        for key in callbacks:
            callback: _Callback | None = key() if isinstance(key, weakref.WeakMethod) else key  # type: ignore[assignment]
            if callback is None:  # its object was garbage-collected, and its clients with it
                continue
            try:
                await callback()
            except Exception as exc:
                first_error = first_error or exc
    if first_error is not None:
        raise first_error


def _loop_finished(token: object) -> bool:
    """Whether the event loop (asyncio) or run (trio) that `token` names has ended."""
    is_closed = getattr(token, "is_closed", None)  # an asyncio loop (asyncio is not imported for this)
    if is_closed is not None:
        return bool(is_closed())
    try:
        token.run_sync_soon(_nothing)  # type: ignore[attr-defined]  # a TrioToken
    except Exception:  # trio.RunFinishedError
        return True
    return False


def _nothing() -> None:
    """A no-op, scheduled only to learn whether a trio run is still alive."""


class LoopClients(Generic[C]):
    """One client per event loop: created on first use, closed with the loop or by `aclose()`.

    Args:
        create: Makes a new client (called at most once per event loop until it is closed).
        close: Closes a client (awaited on the loop the client belongs to).
    """

    def __init__(self, create: Callable[[], C], close: Callable[[C], Awaitable[object]]) -> None:
        self._create = create
        self._close = close
        self._by_loop: dict[object, C] = {}
        self._first: C | None = None

    def adopt(self, client: C) -> None:
        """Use `client` (already created, not yet used) for the first event loop that asks."""
        self._first = client

    def get(self) -> C:
        """Return the client of the running event loop, creating it on first use.

        Raises:
            RuntimeError: If no event loop is running in this thread (anyio's error).
        """
        token = current_token().native_token
        client = self._by_loop.get(token)
        if client is None:
            self._forget_finished_loops()
            client, self._first = (self._first if self._first is not None else self._create()), None
            self._by_loop[token] = client
            register_loop_cleanup(self.aclose_current)
        return client

    async def aclose_current(self) -> None:
        """Close the running event loop's client, if there is one (shielded from cancellation)."""
        client = self._by_loop.pop(current_token().native_token, None)
        if client is not None:
            with anyio.CancelScope(shield=True):
                await self._close(client)

    async def aclose(self) -> None:
        """Close the running loop's client and forget those of finished loops.

        Clients of other loops that still run are closed with their loop's resources.
        """
        self._forget_finished_loops()
        await self.aclose_current()

    def _forget_finished_loops(self) -> None:
        """Drop the clients of loops that have ended (they can no longer be closed properly)."""
        for token in [t for t in list(self._by_loop) if _loop_finished(t)]:
            self._by_loop.pop(token, None)


class PassedClient(Generic[C]):
    """A client the application passed in (`client=`): used on every loop as it is, and never
    closed by cogent (the application owns it). The same interface as `LoopClients`."""

    def __init__(self, client: C) -> None:
        self._client = client

    def get(self) -> C:
        """Return the client."""
        return self._client

    async def aclose(self) -> None:
        """Do nothing: the application closes its own client."""
