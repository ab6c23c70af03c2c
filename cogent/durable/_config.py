"""`durable_config()`: a DBOS configuration for durable runs."""

from __future__ import annotations

from typing import Any

from dbos import DBOSConfig, DBOSPortableJSONSerializer

__all__ = ["durable_config"]


def durable_config(
    name: str,
    database_url: str,
    *,
    executor_id: str | None = None,
    application_version: str | None = None,
    **options: Any,
) -> DBOSConfig:
    """Return a DBOS configuration for durable runs: JSON checkpoints, never pickle.

    Pass it to `DBOS(config=...)` (or to `Worker`). DBOS's default serializer pickles
    workflow inputs, outputs and messages; this one sets `DBOSPortableJSONSerializer`, so
    everything DBOS stores is JSON.

    Args:
        name: The application's name (3 to 256 characters among `a-z 0-9 _ -`).
        database_url: The system database: `postgresql://user@host:port/db`, or
            `sqlite:////absolute/path.sqlite` (one machine).
        executor_id: This process's stable id (e.g. `worker-1`); DBOS recovers, at launch,
            the runs an executor of the same id left. Give each worker its own.
        application_version: Your application's release. Only processes of the same
            version recover or dequeue a run, so that it replays with the same code; set it
            (DBOS's default is a digest of the registered workflows' source, which does not
            change when your tools do).
        **options: Other `DBOSConfig` keys, e.g. `log_level="WARNING"`.

    Returns:
        The configuration.
    """
    config: dict[str, Any] = {
        "name": name,
        "system_database_url": database_url,
        "serializer": DBOSPortableJSONSerializer(),
        **options,
    }
    if executor_id is not None:
        config["executor_id"] = executor_id
    if application_version is not None:
        config["application_version"] = application_version
    return config  # type: ignore[return-value]
