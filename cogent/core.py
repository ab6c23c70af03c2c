"""Small helpers the spec imports from `cogent.core`."""

from __future__ import annotations

import random
from datetime import UTC, datetime

__all__ = ["generate_id", "now_utc"]

_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"
_SYSTEM_RANDOM = random.SystemRandom()  # os.urandom, as `secrets` uses (whose import costs ~3 ms more)


def generate_id(prefix: str = "", length: int = 8) -> str:
    """Return a new random identifier.

    Args:
        prefix: Text put before the random part, e.g. `"task_"`.
        length: Number of random characters (lowercase letters and digits).

    Returns:
        `prefix` followed by `length` random characters from a cryptographic source.

    Raises:
        ValueError: If `length` is smaller than 1.
    """
    if length < 1:
        raise ValueError(f"generate_id() needs length >= 1, got {length}; pass a positive length.")
    # One draw from the OS source for all characters (per-character `secrets.choice`
    # costs one system call each), written in base 36: uniform over all strings.
    number = _SYSTEM_RANDOM.randrange(36**length)
    chars = []
    for _ in range(length):
        number, digit = divmod(number, 36)
        chars.append(_ALPHABET[digit])
    return prefix + "".join(chars)


def now_utc() -> datetime:
    """Return the current time as a timezone-aware `datetime` in UTC."""
    return datetime.now(UTC)
