"""The replay and verification harness that drives the retail desk (not needed to use the desk).

- `database`: `db.json` loaded into SQL once, a database per task, the canonical form and hash.
- `hashing`: `CanonicalHasher`, the final-DB hash from the tables, cheap enough for every task.
- `tasks`: the plan of each task, from `tasks.json` and `expected_outcomes.json`.
- `replay`: the offline replay models, `run_task` (one task through a desk, checked) and
  `replay_tasks` (many, concurrently).
- `telemetry`: `--otel`, the replay's OpenTelemetry spans in a file, checked against the traces.
- `cli`: the command line, `python -m examples.retail`.
"""
