"""Model strings: `"test"`, `"openai:<name>"`, `"anthropic:<name>"` -> a `Model`."""

from __future__ import annotations

import functools
import os

from ..exceptions import UserError
from ._base import Model
from ._offline import TestModel

__all__ = ["infer_model"]

_ENV_PREFIXES = {"openai": "OPENAI_", "anthropic": "ANTHROPIC_"}
"""Per provider: the prefix of the environment variables its SDK reads."""


def infer_model(model: Model | str) -> Model:
    """Return `model`, or the model a model string names.

    `"test"` gives a `TestModel`; `"openai:<name>"` an `OpenAIModel` and
    `"anthropic:<name>"` an `AnthropicModel`, configured from the environment as their SDKs
    read it (`OPENAI_API_KEY`, `OPENAI_BASE_URL`; `ANTHROPIC_API_KEY`, `ANTHROPIC_BASE_URL`).

    One string resolves to one shared model while the provider's environment variables stay
    the same: building an `Agent` per request, or `use_model("openai:...")` per turn, reuses
    that model and its HTTP client instead of opening a new one each time.

    Args:
        model: A `Model` or a model string.

    Returns:
        The model.

    Raises:
        UserError: If the string names no known provider, or the provider's API key is
            missing (e.g. `OPENAI_API_KEY` is not set for an `"openai:..."` model).
        ImportError: If the provider's extra is not installed (the message says which:
            `pip install "cogent-context[openai]"` or `"cogent-context[anthropic]"`).
    """
    if isinstance(model, Model):
        return model
    if model == "test":
        return TestModel()
    provider, _, name = model.partition(":")
    prefix = _ENV_PREFIXES.get(provider)
    if prefix is None or not name:
        raise UserError(
            f"Unknown model {model!r}; pass a Model instance, 'test', 'openai:<model name>' (e.g. "
            "'openai:gpt-4o-mini') or 'anthropic:<model name>' (e.g. 'anthropic:claude-sonnet-5')."
        )
    environment = tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith(prefix)))
    return _shared_model(provider, name, environment)


@functools.lru_cache(maxsize=64)
def _shared_model(provider: str, name: str, environment: tuple[tuple[str, str], ...]) -> Model:
    """The one model for a provider, a model name and that provider's environment."""
    if provider == "anthropic":
        from .anthropic import AnthropicModel  # type: ignore[import-not-found, unused-ignore]

        anthropic_model: Model = AnthropicModel(name)
        return anthropic_model
    from .openai import OpenAIModel  # type: ignore[import-not-found, unused-ignore]

    openai_model: Model = OpenAIModel(name)
    return openai_model
