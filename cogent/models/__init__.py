"""Models: what the run loop asks for the next response.

`Model` is the interface; `FunctionModel`, `ScriptedModel` and `TestModel` run offline
and deterministically; `cogent.models.openai.OpenAIModel` speaks the Chat Completions
API (install `cogent-context[openai]`) and `cogent.models.anthropic.AnthropicModel` the
Anthropic Messages API (install `cogent-context[anthropic]`). `close_loop_resources()`
closes the HTTP clients models opened on the running event loop, and
`register_loop_cleanup()` lets a model of your own close its clients with them.
"""

from __future__ import annotations

from ._base import Model, ModelRequestParameters, ReasoningDelta, TextDelta
from ._infer import infer_model
from ._loop import close_loop_resources, register_loop_cleanup
from ._offline import FunctionModel, ScriptedModel, TestModel

__all__ = [
    "FunctionModel",
    "Model",
    "ModelRequestParameters",
    "ReasoningDelta",
    "ScriptedModel",
    "TestModel",
    "TextDelta",
    "close_loop_resources",
    "infer_model",
    "register_loop_cleanup",
]
