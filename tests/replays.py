"""Answers shaped as OpenAI-compatible servers send them, for `ChatServer` to replay.

Each provider answers the same two-turn conversation (a `get_weather` tool call, then the
final text), plain and streamed, with the fields, quirks and envelopes its public API
reference documents: OpenAI (usage details, `obfuscation`), Azure (content-filter results,
an envelope-only first chunk), Gemini's compatible endpoint (empty tool-call ids, thought
signatures in `extra_content`, tool-call fragments without `index`), DeepSeek
(`reasoning_content`, cache usage), Cerebras (`reasoning`, `time_info`), Groq (`reasoning`,
usage under `x_groq`), OpenRouter (`reasoning` + `reasoning_details`, SSE comments),
Snowflake Cortex (Claude ids) and Hugging Face (TGI fingerprints).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from chat_server import Raw, events

ARGS = json.dumps({"city": "Paris"})
ANSWER = "It is 18°C and sunny in Paris."


@dataclass(frozen=True, kw_only=True)
class Provider:
    """One provider's recorded answers and what cogent must make of them."""

    name: str
    tool_turn: dict[str, Any]
    """The plain answer that calls `get_weather` (possibly twice, in parallel)."""
    final: dict[str, Any]
    """The plain final answer."""
    tool_stream: Raw
    final_stream: Raw
    call_ids: list[str | None]
    """The ids cogent must report for the tool calls (`None`: the server sent an empty one)."""
    reasoning_field: str | None
    """Where the provider puts reasoning, and so where it must come back."""
    reasoning_text: str
    usage: tuple[int, int]
    """Input and output tokens of the tool turn."""


def _envelope(kind: str, model: str, **extra: Any) -> dict[str, Any]:
    return {"id": f"chatcmpl-{kind}", "object": kind, "created": 1745900000, "model": model, **extra}


def _usage(prompt: int, completion: int, **extra: Any) -> dict[str, Any]:
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion, **extra}


def _call(call_id: str, arguments: str = ARGS, **extra: Any) -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": "get_weather", "arguments": arguments}, **extra}


def _plain(model: str, message: dict[str, Any], finish: str, usage: dict[str, Any], **extra: Any) -> dict[str, Any]:
    choice = {"index": 0, "message": {"role": "assistant", **message}, "logprobs": None, "finish_reason": finish}
    return {**_envelope("chat.completion", model), "choices": [choice], "usage": usage, **extra}


def _chunk(model: str, delta: dict[str, Any], finish: str | None = None, **extra: Any) -> dict[str, Any]:
    choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
    return {**_envelope("chat.completion.chunk", model), "choices": [choice], **extra}


def _usage_chunk(model: str, usage: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {**_envelope("chat.completion.chunk", model), "choices": [], "usage": usage, **extra}


def _pieces(text: str, size: int = 7) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


def _arg_chunks(model: str, call_id: str, **extra: Any) -> list[dict[str, Any]]:
    """A tool call streamed the OpenAI way: id and name first, then argument fragments by index."""
    first = {"index": 0, "id": call_id, "type": "function", "function": {"name": "get_weather", "arguments": ""}}
    rest = [{"index": 0, "function": {"arguments": p}} for p in _pieces(ARGS)]
    return [_chunk(model, {"tool_calls": [f]}, **extra) for f in [first, *rest]]


def _text_chunks(model: str, **extra: Any) -> list[dict[str, Any]]:
    return [_chunk(model, {"content": p}, **extra) for p in _pieces(ANSWER)]


DONE = "data: [DONE]\n\n"


def openai() -> Provider:
    m = "gpt-4o-mini-2024-07-18"
    details = {
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }
    top = {"service_tier": "default", "system_fingerprint": "fp_34a54ae93c"}
    chunk_extra = {**top, "usage": None, "obfuscation": "kD3"}
    return Provider(
        name="openai",
        tool_turn=_plain(
            m,
            {"content": None, "tool_calls": [_call("call_Wl1aXo2")], "refusal": None, "annotations": []},
            "tool_calls",
            _usage(61, 15, **details),
            **top,
        ),
        final=_plain(
            m, {"content": ANSWER, "refusal": None, "annotations": []}, "stop", _usage(90, 11, **details), **top
        ),
        tool_stream=events(
            _chunk(m, {"role": "assistant", "content": None, "refusal": None}, **chunk_extra),
            *_arg_chunks(m, "call_Wl1aXo2", **chunk_extra),
            _chunk(m, {}, "tool_calls", **chunk_extra),
            _usage_chunk(m, _usage(61, 15, **details), **top, obfuscation="x"),
            DONE,
        ),
        final_stream=events(
            _chunk(m, {"role": "assistant", "content": "", "refusal": None}, **chunk_extra),
            *_text_chunks(m, **chunk_extra),
            _chunk(m, {}, "stop", **chunk_extra),
            _usage_chunk(m, _usage(90, 11, **details), **top, obfuscation="x"),
            DONE,
        ),
        call_ids=["call_Wl1aXo2"],
        reasoning_field=None,
        reasoning_text="",
        usage=(61, 15),
    )


_FILTERS = {
    "hate": {"filtered": False, "severity": "safe"},
    "self_harm": {"filtered": False, "severity": "safe"},
    "sexual": {"filtered": False, "severity": "safe"},
    "violence": {"filtered": False, "severity": "safe"},
}
_PROMPT_FILTERS = [{"prompt_index": 0, "content_filter_results": _FILTERS}]


def azure() -> Provider:
    m = "gpt-4o-2024-11-20"
    azure_first = {
        "choices": [],
        "created": 0,
        "id": "",
        "model": "",
        "object": "",
        "prompt_filter_results": _PROMPT_FILTERS,
    }
    tool = _plain(
        m, {"content": None, "tool_calls": [_call("call_az8Hq")], "refusal": None}, "tool_calls", _usage(70, 18)
    )
    tool["choices"][0]["content_filter_results"] = {}
    tool["prompt_filter_results"] = _PROMPT_FILTERS
    final = _plain(m, {"content": ANSWER, "refusal": None}, "stop", _usage(99, 11))
    final["choices"][0]["content_filter_results"] = _FILTERS
    final["prompt_filter_results"] = _PROMPT_FILTERS
    extra = {"system_fingerprint": "fp_ee1d74bde0"}
    return Provider(
        name="azure",
        tool_turn=tool,
        final=final,
        tool_stream=events(
            azure_first,
            _chunk(m, {"role": "assistant", "content": None, "refusal": None}, **extra),
            *_arg_chunks(m, "call_az8Hq", **extra),
            _chunk(m, {}, "tool_calls", **extra),
            _usage_chunk(m, _usage(70, 18), **extra),
            DONE,
        ),
        final_stream=events(
            azure_first,
            *_text_chunks(m, **extra),
            _chunk(m, {}, "stop", **extra),
            _usage_chunk(m, _usage(99, 11), **extra),
            DONE,
        ),
        call_ids=["call_az8Hq"],
        reasoning_field=None,
        reasoning_text="",
        usage=(70, 18),
    )


GEMINI_SIGNATURE = "CsQCAdHtim8pK3Qe+signature+of+the+thoughts"


def gemini() -> Provider:
    m = "gemini-3-flash-preview"
    sig = {"extra_content": {"google": {"thought_signature": GEMINI_SIGNATURE}}}
    calls = [_call("", **sig), _call("", json.dumps({"city": "Lyon"}))]
    envelope = {"id": "x2f9aMaVG5eW1MkP", "created": 1745900000, "model": m}
    stream_calls = [{k: v for k, v in c.items()} for c in calls]  # Gemini sends no index on fragments
    return Provider(
        name="gemini",
        tool_turn={
            "choices": [
                {"finish_reason": "tool_calls", "index": 0, "message": {"role": "assistant", "tool_calls": calls}}
            ],
            **envelope,
            "object": "chat.completion",
            "usage": _usage(48, 30),
        },
        final={
            "choices": [{"finish_reason": "stop", "index": 0, "message": {"content": ANSWER, "role": "assistant"}}],
            **envelope,
            "object": "chat.completion",
            "usage": _usage(95, 12),
        },
        tool_stream=events(
            {
                "choices": [
                    {
                        "delta": {"role": "assistant", "tool_calls": stream_calls},
                        "finish_reason": "tool_calls",
                        "index": 0,
                    }
                ],
                **envelope,
                "object": "chat.completion.chunk",
                "usage": _usage(48, 30),
            },
            DONE,
        ),
        final_stream=events(
            *[
                {
                    "choices": [{"delta": {"content": p, "role": "assistant"}, "index": 0}],
                    **envelope,
                    "object": "chat.completion.chunk",
                }
                for p in _pieces(ANSWER, 12)
            ],
            {
                "choices": [{"delta": {"content": "", "role": "assistant"}, "finish_reason": "stop", "index": 0}],
                **envelope,
                "object": "chat.completion.chunk",
                "usage": _usage(95, 12),
            },
            DONE,
        ),
        call_ids=[None, None],
        reasoning_field="extra_content",
        reasoning_text="",
        usage=(48, 30),
    )


DEEPSEEK_THOUGHT = "The user asks for the weather in Paris. I should call get_weather."


def deepseek() -> Provider:
    m = "deepseek-reasoner"
    usage = _usage(
        120,
        64,
        prompt_tokens_details={"cached_tokens": 64},
        completion_tokens_details={"reasoning_tokens": 40},
        prompt_cache_hit_tokens=64,
        prompt_cache_miss_tokens=56,
    )
    top = {"system_fingerprint": "fp_ffc7281d48_prod0820_fp8_kvcache"}
    call = {"index": 0, **_call("call_00_Xq7bT3oPp")}
    return Provider(
        name="deepseek",
        tool_turn=_plain(
            m, {"content": "", "reasoning_content": DEEPSEEK_THOUGHT, "tool_calls": [call]}, "tool_calls", usage, **top
        ),
        final=_plain(
            m, {"content": ANSWER, "reasoning_content": "The tool says 18°C."}, "stop", _usage(200, 30), **top
        ),
        tool_stream=events(
            _chunk(m, {"role": "assistant", "content": None, "reasoning_content": ""}, **top),
            *[_chunk(m, {"content": None, "reasoning_content": p}, **top) for p in _pieces(DEEPSEEK_THOUGHT, 11)],
            *_arg_chunks(m, "call_00_Xq7bT3oPp", **top),
            _chunk(m, {"content": None, "reasoning_content": None}, "tool_calls", **top, usage=usage),
            DONE,
        ),
        final_stream=events(
            _chunk(m, {"role": "assistant", "content": None, "reasoning_content": "The tool says 18°C."}, **top),
            *_text_chunks(m, **top),
            _chunk(m, {"content": ""}, "stop", **top, usage=_usage(200, 30)),
            DONE,
        ),
        call_ids=["call_00_Xq7bT3oPp"],
        reasoning_field="reasoning_content",
        reasoning_text=DEEPSEEK_THOUGHT,
        usage=(120, 64),
    )


CEREBRAS_THOUGHT = "Need weather for Paris; call the tool."


def cerebras() -> Provider:
    m = "gpt-oss-120b"
    time_info = {
        "queue_time": 0.000073,
        "prompt_time": 0.0011,
        "completion_time": 0.0057,
        "total_time": 0.0222,
        "created": 1745900000,
    }
    top = {"system_fingerprint": "fp_70185065a4", "time_info": time_info}
    usage = _usage(150, 40, prompt_tokens_details={"cached_tokens": 0})
    return Provider(
        name="cerebras",
        tool_turn=_plain(
            m, {"reasoning": CEREBRAS_THOUGHT, "tool_calls": [_call("8d2f0e1c9")]}, "tool_calls", usage, **top
        ),
        final=_plain(m, {"content": ANSWER, "reasoning": "Answer briefly."}, "stop", _usage(210, 20), **top),
        tool_stream=events(
            _chunk(m, {"role": "assistant"}, system_fingerprint="fp_70185065a4"),
            *[_chunk(m, {"reasoning": p}) for p in _pieces(CEREBRAS_THOUGHT)],
            _chunk(m, {"tool_calls": [{"index": 0, **_call("8d2f0e1c9")}]}),
            {**_chunk(m, {}, "tool_calls"), "usage": usage, "time_info": time_info},
            DONE,
        ),
        final_stream=events(
            _chunk(m, {"role": "assistant"}),
            _chunk(m, {"reasoning": "Answer briefly."}),
            *_text_chunks(m),
            {**_chunk(m, {}, "stop"), "usage": _usage(210, 20), "time_info": time_info},
            DONE,
        ),
        call_ids=["8d2f0e1c9"],
        reasoning_field="reasoning",
        reasoning_text=CEREBRAS_THOUGHT,
        usage=(150, 40),
    )


GROQ_THOUGHT = "User wants Paris weather. Use get_weather."


def groq() -> Provider:
    m = "openai/gpt-oss-20b"
    timing = {"queue_time": 0.05, "prompt_time": 0.01, "completion_time": 0.04, "total_time": 0.05}
    usage = _usage(180, 50, **timing)
    top = {"system_fingerprint": "fp_e99e93f2ac", "service_tier": "on_demand", "usage_breakdown": None}
    return Provider(
        name="groq",
        tool_turn=_plain(
            m,
            {"reasoning": GROQ_THOUGHT, "tool_calls": [_call("fc_7b5e0c1d")]},
            "tool_calls",
            usage,
            **top,
            x_groq={"id": "req_01jxyz"},
        ),
        final=_plain(
            m,
            {"content": ANSWER, "reasoning": "Done."},
            "stop",
            _usage(240, 20, **timing),
            **top,
            x_groq={"id": "req_02"},
        ),
        tool_stream=events(
            _chunk(m, {"role": "assistant", "content": None}, x_groq={"id": "req_01jxyz"}, **top),
            *[_chunk(m, {"reasoning": p}, **top) for p in _pieces(GROQ_THOUGHT)],
            _chunk(m, {"tool_calls": [{"index": 0, **_call("fc_7b5e0c1d")}]}, **top),
            _chunk(m, {}, "tool_calls", x_groq={"id": "req_01jxyz", "usage": usage}, **top),
            DONE,
        ),
        final_stream=events(
            _chunk(m, {"role": "assistant", "content": ""}, x_groq={"id": "req_02"}),
            _chunk(m, {"reasoning": "Done."}),
            *_text_chunks(m),
            _chunk(m, {}, "stop", x_groq={"id": "req_02", "usage": _usage(240, 20, **timing)}),
            DONE,
        ),
        call_ids=["fc_7b5e0c1d"],
        reasoning_field="reasoning",
        reasoning_text=GROQ_THOUGHT,
        usage=(180, 50),
    )


OPENROUTER_THOUGHT = "**Checking the weather** I will call get_weather for Paris."
OPENROUTER_DETAILS = [
    {"type": "reasoning.text", "text": OPENROUTER_THOUGHT, "format": "google-gemini-v1", "index": 0},
    {
        "type": "reasoning.encrypted",
        "data": "CiQB0e2Kbx+encrypted",
        "id": "tool_get_weather_Ab1",
        "format": "google-gemini-v1",
        "index": 1,
    },
]


def openrouter() -> Provider:
    m = "google/gemini-3-pro-preview"
    top = {"provider": "Google", "system_fingerprint": None}
    usage = _usage(130, 60, cost=0.00071, is_byok=False, completion_tokens_details={"reasoning_tokens": 45})
    message = {
        "content": "",
        "refusal": None,
        "reasoning": OPENROUTER_THOUGHT,
        "reasoning_details": OPENROUTER_DETAILS,
        "tool_calls": [{"index": 0, **_call("tool_get_weather_Ab1")}],
    }
    tool = _plain(m, message, "tool_calls", usage, **top)
    tool["choices"][0]["native_finish_reason"] = "STOP"
    final = _plain(
        m, {"content": ANSWER, "refusal": None, "reasoning": None}, "stop", _usage(210, 12, cost=0.0004), **top
    )
    final["choices"][0]["native_finish_reason"] = "STOP"
    text, encrypted = OPENROUTER_DETAILS
    halves = _pieces(OPENROUTER_THOUGHT, 30)
    return Provider(
        name="openrouter",
        tool_turn=tool,
        final=final,
        tool_stream=events(
            ": OPENROUTER PROCESSING\n\n",
            *[
                _chunk(
                    m,
                    {"role": "assistant", "content": "", "reasoning": h, "reasoning_details": [{**text, "text": h}]},
                    **top,
                )
                for h in halves
            ],
            _chunk(m, {"role": "assistant", "content": "", "reasoning_details": [encrypted]}, **top),
            _chunk(
                m,
                {"role": "assistant", "content": "", "tool_calls": [{"index": 0, **_call("tool_get_weather_Ab1")}]},
                **top,
            ),
            {**_chunk(m, {"role": "assistant", "content": ""}, "tool_calls", **top), "native_finish_reason": "STOP"},
            _usage_chunk(m, usage, **top),
            DONE,
        ),
        final_stream=events(
            ": OPENROUTER PROCESSING\n\n",
            *[_chunk(m, {"role": "assistant", "content": p}, **top) for p in _pieces(ANSWER)],
            _chunk(m, {"role": "assistant", "content": ""}, "stop", **top),
            _usage_chunk(m, _usage(210, 12, cost=0.0004), **top),
            DONE,
        ),
        call_ids=["tool_get_weather_Ab1"],
        reasoning_field="reasoning_details",
        reasoning_text=OPENROUTER_THOUGHT,
        usage=(130, 60),
    )


def snowflake() -> Provider:
    m = "claude-sonnet-4-5"
    call_id = "tooluse_Kq3bYx0wT9eZ1pQx"
    return Provider(
        name="snowflake",
        tool_turn=_plain(
            m, {"content": "I'll check the weather.", "tool_calls": [_call(call_id)]}, "tool_calls", _usage(400, 60)
        ),
        final=_plain(m, {"content": ANSWER}, "stop", _usage(480, 14)),
        tool_stream=events(
            _chunk(m, {"role": "assistant", "content": "I'll check the weather."}),
            *_arg_chunks(m, call_id),
            _chunk(m, {}, "tool_calls"),
            _usage_chunk(m, _usage(400, 60)),
            DONE,
        ),
        final_stream=events(*_text_chunks(m), _chunk(m, {}, "stop"), _usage_chunk(m, _usage(480, 14)), DONE),
        call_ids=[call_id],
        reasoning_field=None,
        reasoning_text="",
        usage=(400, 60),
    )


def huggingface() -> Provider:
    m = "meta-llama/Llama-3.3-70B-Instruct"
    top = {"system_fingerprint": "3.2.1-sha-4d28897"}
    return Provider(
        name="huggingface",
        tool_turn=_plain(
            m,
            {"content": None, "tool_calls": [{**_call("chatcmpl-tool-5f2a"), "description": None}]},
            "tool_calls",
            _usage(230, 25),
            **top,
        ),
        final=_plain(m, {"content": ANSWER, "tool_call_id": None}, "stop", _usage(260, 12), **top),
        tool_stream=events(
            _chunk(m, {"role": "assistant", "content": None}, **top),
            *_arg_chunks(m, "chatcmpl-tool-5f2a", **top),
            _chunk(m, {}, "tool_calls", **top),
            _usage_chunk(m, _usage(230, 25), **top),
            DONE,
        ),
        final_stream=events(
            *_text_chunks(m, **top),
            _chunk(m, {"role": "assistant", "content": ""}, "stop", **top, usage=_usage(260, 12)),
            DONE,
        ),
        call_ids=["chatcmpl-tool-5f2a"],
        reasoning_field=None,
        reasoning_text="",
        usage=(230, 25),
    )


PROVIDERS = [openai(), azure(), gemini(), deepseek(), cerebras(), groq(), openrouter(), snowflake(), huggingface()]
"""Every provider's recorded conversation."""

DEEPSEEK_MISSING_REASONING = Raw(
    status=400,
    body={
        "error": {
            "message": "The reasoning_content in the thinking mode must be passed back to the API.",
            "type": "invalid_request_error",
            "param": None,
            "code": "invalid_request_error",
        }
    },
)
"""DeepSeek's answer to a request whose tool-call turn lacks its `reasoning_content`."""
