"""Durable runs on DBOS: every model request and tool call checkpointed, runs that survive their process.

```python
from dbos import DBOS
from cogent.durable import DurableAgent, Worker, durable_config

durable = DurableAgent(agent, resources=lambda state: {"db": connect(state["tenant"])})

async def main() -> None:
    async with Worker(durable_config("shop", "postgresql://...", executor_id="worker-1")):
        result = await durable.run("Refund order 42", context=ShopContext(tenant="t1", db=db))
```

A durable run is a DBOS workflow: each model request and each tool call is a step whose
output is checkpointed as JSON, each delegation is a child workflow, and a call that needs
approval waits durably for `approve()`/`reject()` from any process. After a crash, any
process of the application resumes the run from its last completed step, with the
context's *state* restored from the checkpoint and its *resources* (fields marked
`Annotated[T, Resource]`) made fresh by the `resources` factory. Asyncio only. See
docs/durable.md.

Needs the extra: `pip install "cogent-context[dbos]"`.
"""

from __future__ import annotations

try:
    import dbos as _dbos  # noqa: F401
except ImportError as _exc:  # pragma: no cover - exercised by the missing-extra test
    raise ImportError('cogent.durable needs DBOS; install it with: pip install "cogent-context[dbos]"') from _exc

from ._agent import DEFAULT_APPROVAL_TIMEOUT, DEFAULT_QUEUE, DurableAgent
from ._codec import StepError
from ._config import durable_config
from ._steps import idempotency_key
from ._worker import Worker

__all__ = [
    "DEFAULT_APPROVAL_TIMEOUT",
    "DEFAULT_QUEUE",
    "DurableAgent",
    "StepError",
    "Worker",
    "durable_config",
    "idempotency_key",
]
