"""Models: what the run loop asks for the next response.

`Model` is the interface; `FunctionModel`, `ScriptedModel` and `TestModel` run offline
and deterministically; `cogent.models.openai.OpenAIModel` speaks the Chat Completions
API (install `cogent-context[openai]`).
"""

from __future__ import annotations

from ._base import Model, ModelRequestParameters, ReasoningDelta, TextDelta, infer_model
from ._offline import FunctionModel, ScriptedModel, TestModel

__all__ = [
    "FunctionModel",
    "Model",
    "ModelRequestParameters",
    "ReasoningDelta",
    "ScriptedModel",
    "TestModel",
    "TextDelta",
    "infer_model",
]
