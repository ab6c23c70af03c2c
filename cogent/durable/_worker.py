"""`Worker`: a process's share of the durable runs, and the recovery of dead workers' runs.

Open-source DBOS recovers a crashed process's runs only when a process with the same
executor id launches again; nothing notices that an executor died for good (that is DBOS
Conductor's job). With a PostgreSQL system database, each `Worker` therefore heartbeats
into the table `cogent_executors` and, in the same loop, takes the rows of executors
silent for `dead_after` seconds (`FOR UPDATE SKIP LOCKED`: exactly one live worker reaps
each dead one; only the database's clock is used), puts their PENDING runs back on their
queues with `DBOS._recover_pending_workflows([dead])` (a private DBOS 3.4 call, pinned by
the test suite), and deletes the rows. A live worker then dequeues each run and resumes it
from its last checkpoint.
"""

from __future__ import annotations

import logging
import math
import threading
from types import TracebackType
from typing import Any, Self

import anyio.to_thread
import psycopg
from dbos import DBOS, DBOSConfig
from sqlalchemy.engine import make_url

from ..exceptions import UserError
from ._agent import DEFAULT_QUEUE

__all__ = ["Worker"]

_log = logging.getLogger("cogent.durable")

_CREATE = (
    "CREATE TABLE IF NOT EXISTS cogent_executors (executor_id text PRIMARY KEY, heartbeat_at timestamptz NOT NULL)"
)
_BEAT = "INSERT INTO cogent_executors VALUES (%s, now()) ON CONFLICT (executor_id) DO UPDATE SET heartbeat_at = now()"
_DEAD = (
    "SELECT executor_id FROM cogent_executors WHERE executor_id <> %s "
    "AND heartbeat_at < now() - make_interval(secs => %s) FOR UPDATE SKIP LOCKED"
)


class Worker:
    """Launches DBOS in this process's event loop and serves a queue of durable runs.

    ```python
    async def main() -> None:
        async with Worker(durable_config("shop", url, executor_id="worker-1"), concurrency=4):
            await anyio.sleep_forever()  # or serve requests that call durable.run() / enqueue()

    asyncio.run(main())
    DBOS.destroy()  # after the loop has ended
    ```

    Entering the worker constructs DBOS with `config` (unless this process already did),
    launches it inside the running loop (so recovered runs execute on it, with resources
    made there), which recovers the runs this executor id left PENDING, and registers the
    queue with its concurrency limits (DBOS enforces them: `worker_concurrency` per
    process, `global_concurrency` over all processes). On a PostgreSQL system database it
    also starts the liveness thread described in the module docs: a worker silent for
    `dead_after` seconds has its runs moved to the live ones. `dead_after` must be well
    above any pause of a live process (garbage collection, CPU starvation): a worker
    thought dead while still running would run a run's uncheckpointed step a second time
    (DBOS keeps the run's outcome exactly-once). On SQLite (one machine) a crashed worker's
    runs resume when a process with the same executor id starts again.

    Args:
        config: The DBOS configuration (e.g. `durable_config(...)`); every worker needs its
            own stable `executor_id`.
        queue: The queue to serve (`DurableAgent.enqueue(queue=...)`).
        concurrency: The most runs of the queue this process executes at once, or `None`.
        global_concurrency: The most runs of the queue executing at once in all processes, or `None`.
        polling_interval: Seconds between two looks at the queue (DBOS's default: 1).
        heartbeat_interval: Seconds between heartbeats (PostgreSQL only).
        dead_after: Seconds of silence after which a worker counts as dead (PostgreSQL only).

    Raises:
        UserError: If an argument cannot work, or a PostgreSQL configuration has no explicit `executor_id`.
    """

    def __init__(
        self,
        config: DBOSConfig,
        *,
        queue: str = DEFAULT_QUEUE,
        concurrency: int | None = None,
        global_concurrency: int | None = None,
        polling_interval: float = 1.0,
        heartbeat_interval: float = 5.0,
        dead_after: float = 60.0,
    ) -> None:
        url = config.get("system_database_url") if isinstance(config, dict) else None
        if not isinstance(url, str) or not url:
            raise UserError("Worker() needs a DBOS config with a system_database_url; use durable_config(...).")
        for name, value in (("concurrency", concurrency), ("global_concurrency", global_concurrency)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise UserError(f"Worker() got {name}={value!r}; pass an int of 1 or more, or None.")
        for name, seconds in (
            ("polling_interval", polling_interval),
            ("heartbeat_interval", heartbeat_interval),
            ("dead_after", dead_after),
        ):
            if (
                isinstance(seconds, bool)
                or not isinstance(seconds, int | float)
                or not (seconds > 0 and math.isfinite(seconds))
            ):
                raise UserError(f"Worker() got {name}={seconds!r}; pass a positive number of seconds.")
        if dead_after <= 2 * heartbeat_interval:
            raise UserError(
                f"Worker() got dead_after={dead_after} with heartbeat_interval={heartbeat_interval}; a live worker "
                "would look dead between two heartbeats. Make dead_after several heartbeat intervals."
            )
        parsed = make_url(url)
        self._liveness: _Liveness | None = None
        if parsed.get_backend_name() == "postgresql":
            executor_id = config.get("executor_id")
            if not executor_id or executor_id == "local":
                raise UserError(
                    "Worker() on PostgreSQL needs a stable executor_id per worker in its config (e.g. "
                    "durable_config(..., executor_id='worker-1')); workers that share an id cannot tell each other "
                    "apart."
                )
            dsn = parsed.set(drivername="postgresql").render_as_string(hide_password=False)
            self._liveness = _Liveness(dsn, executor_id, interval=heartbeat_interval, dead_after=dead_after)
        self._config = config
        self._queue = queue
        self._concurrency = concurrency
        self._global_concurrency = global_concurrency
        self._polling_interval = float(polling_interval)

    async def __aenter__(self) -> Self:
        DBOS(config=self._config)
        DBOS.launch()
        await DBOS.register_queue_async(
            self._queue,
            worker_concurrency=self._concurrency,
            global_concurrency=self._global_concurrency,
            polling_interval_sec=self._polling_interval,
        )
        if self._liveness is not None:
            await anyio.to_thread.run_sync(self._liveness.start)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._liveness is not None:
            await anyio.to_thread.run_sync(self._liveness.stop)


class _Liveness:
    """The heartbeat-and-reap thread of one worker (see the module docs)."""

    def __init__(self, dsn: str, executor_id: str, *, interval: float, dead_after: float) -> None:
        self._dsn, self._executor_id = dsn, executor_id
        self._interval, self._dead_after = interval, dead_after
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cogent-executor-liveness", daemon=True)

    def start(self) -> None:
        with psycopg.connect(self._dsn, autocommit=True) as connection:
            connection.execute(_CREATE)
            connection.execute(_BEAT, (self._executor_id,))
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                with psycopg.connect(self._dsn, autocommit=True) as connection:
                    while not self._stop.wait(self._interval):
                        self._beat(connection)
            except psycopg.Error as error:  # the database is away: try again after a pause
                _log.warning("Executor liveness of %r: %s; retrying.", self._executor_id, error)
                self._stop.wait(self._interval)

    def _beat(self, connection: psycopg.Connection[Any]) -> None:
        connection.execute(_BEAT, (self._executor_id,))
        with connection.transaction():
            dead = connection.execute(_DEAD, (self._executor_id, self._dead_after)).fetchall()
            for (executor_id,) in dead:
                recovered = DBOS._recover_pending_workflows([executor_id])
                _log.info(
                    "Executor %r recovered %d runs of dead executor %r.", self._executor_id, len(recovered), executor_id
                )
                connection.execute("DELETE FROM cogent_executors WHERE executor_id = %s", (executor_id,))
