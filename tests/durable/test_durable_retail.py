"""The main job, durable: `python -m examples.retail --durable --crash-every N` on SQLite, one task with writes.

The command replays task 16 (three writes through two specialists) as a durable run whose
worker process is SIGKILLed at seeded random steps (inside a model request, or right after
a write's commit) and restarted until the run finishes. Pinned: every call and the final
database match the reference, as in the in-memory replay; the worker really crashed,
also right after a write; and each write was made exactly once.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_durable_replay_survives_crashes_and_writes_once(fast_path: Path) -> None:
    """Seeded SIGKILLs of the worker: the task still matches, and no write is applied twice."""
    done = subprocess.run(
        [sys.executable, "-m", "examples.retail", "--durable", "--task", "16", "--crash-every", "3", "--seed", "0"],
        cwd=ROOT,
        env={**os.environ, "TMPDIR": str(fast_path)},  # its work directory (SQLite files) goes there
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = done.stdout
    for line in ("tasks matched    1/1", "calls matched    9/9", "final DB hashes  1/1"):
        assert line in report
    crashes = re.search(r"crashes survived (\d+) SIGKILLs of the worker \((\d+) right after a write's commit", report)
    assert crashes is not None and int(crashes[1]) >= 3 and int(crashes[2]) >= 1
    assert "exactly-once     3 writes recorded for 3 successful write calls (each once)" in report
