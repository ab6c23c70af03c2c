"""Interceptors: run code at each phase of a run, with the run context injected.

See `Interceptor`, `Phase`, `InterceptResult` and the built-in interceptors
`PermissionGate`, `ToolGate`, `BudgetGuard`, `RateLimiter` and `Auditor`.
"""

from __future__ import annotations

from ._base import InterceptContext, Interceptor, InterceptResult, Phase, StopExecution, interceptor

__all__ = [
    "InterceptContext",
    "InterceptResult",
    "Interceptor",
    "Phase",
    "StopExecution",
    "interceptor",
]
