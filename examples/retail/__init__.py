"""The tau2-bench retail support desk on cogent, and the harness that verifies it.

The desk (what a user learns from):

- `context`: `RetailContext`, the run context: the conversation's database and session.
- `tools`: the 15 tools (`@tool`, `ctx: RetailContext`); writes need an approval.
- `policy`: the store's policy as interceptors.
- `desk`: the front desk agent and its three specialist subagents (`build_desk`).

Its data layer: `store` (the SQL tables and records) and `operations` (the reference's
rules in SQL). The replay and verification harness is `harness` (`python -m examples.retail`).
"""
