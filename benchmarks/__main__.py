"""Entry point for `python -m benchmarks` (see `benchmarks/__init__.py`)."""

from __future__ import annotations

import sys

from benchmarks.cli import main

sys.exit(main())
