"""`python -m examples.retail`: replay the tau2 retail tasks through the desk (see `runner`)."""

from __future__ import annotations

from .runner import main

raise SystemExit(main())
