"""Interceptors: run code at each phase of a run, with the run context injected.

See `Interceptor`, `Phase`, `InterceptResult` and the built-in interceptors
`PermissionGate`, `ToolGate`, `BudgetGuard`, `RateLimiter` and `Auditor`.
"""

from __future__ import annotations

from ._base import InterceptContext, Interceptor, InterceptResult, Phase, StopExecution, interceptor
from .auditor import Auditor, AuditRecord
from .budget_guard import BudgetGuard
from .permission_gate import PermissionGate
from .rate_limiter import RateLimiter
from .tool_gate import ToolGate

__all__ = [
    "AuditRecord",
    "Auditor",
    "BudgetGuard",
    "InterceptContext",
    "InterceptResult",
    "Interceptor",
    "PermissionGate",
    "Phase",
    "RateLimiter",
    "StopExecution",
    "ToolGate",
    "interceptor",
]
