"""`python -m examples.retail`: replay the tau2 retail tasks through the desk (see `harness.cli`)."""

from __future__ import annotations

from .harness.cli import main

raise SystemExit(main())
