"""The tau2-bench retail support desk on cogent, checked against the reference outcomes.

- `store`: the database and the 15 operations (byte-exact with tau2-bench).
- `context`: `RetailContext`, the run context holding the task's database and session.
- `tools`: the operations as cogent tools; `policy`: the policy as interceptors.
- `desk`: the front desk agent and its specialist subagents.
- `replay`: the gold actions of the 114 tasks replayed through the desk by an offline model.
- `runner`: the command line, `python -m examples.retail`.
"""
