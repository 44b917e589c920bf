"""OpenAI's formats: Chat Completions (and every OpenAI-compatible API) and the Responses API.

Chat Completions' ``prompt_tokens`` includes cached tokens and the details are subsets; the
same shape is served by Mistral, DeepSeek (cache hits in ``prompt_cache_hit_tokens``), Groq
and xAI (reasoning *outside* ``completion_tokens``), each read by its own variant. The
Responses API's ``input_tokens`` includes cache reads and writes.

Streams: a chat stream carries its usage on one extra last chunk (only with
``include_usage``; Groq in ``x_groq.usage``); a Responses stream on its terminal event.
"""

from __future__ import annotations as _annotations

from typing import Any, Final

from meterline._providers._billing import reported_cost_of, service_tier_of
from meterline._providers._rules import OAI, OBJECT, StreamState, details, opt, plain_dict
from meterline._providers._server_tools import with_responses_tools
from meterline._usage import MAX_COUNT, Usage, check_count, checked_usage, new_usage
from meterline.exceptions import MalformedUsageError

__all__ = [
    "AUTO",
    "CHAT_APIS",
    "CHAT_ENDPOINTS",
    "DEEPSEEK_RULES",
    "OPENAI_RULES",
    "XAI_RULES",
    "chat_auto",
    "chat_chunk",
    "chat_deepseek",
    "chat_openai",
    "chat_usage",
    "chat_xai",
    "provider_of_chat",
    "reduce_chat_chunk",
    "reduce_responses_event",
    "responses_event",
    "responses_usage",
    "xai_additive",
]


CHAT_APIS: Final[dict[tuple[str | None, str], str]] = {  # the OpenAI-compatible APIs with names of their own
    ("mistral_ai", "chat"): "mistral.chat",
    ("mistral_ai", "embeddings"): "mistral.embeddings",
    ("deepseek", "chat"): "deepseek.chat",
    ("groq", "chat"): "groq.chat",
    ("x_ai", "chat"): "xai.chat",
}


CHAT_ENDPOINTS: Final[dict[str, str]] = {
    "chat.completion": "chat",
    "chat.completion.chunk": "chat",
    "text_completion": "completions",
    "list": "embeddings",
}


# Which reading of an OpenAI-shaped block: detected, OpenAI's, DeepSeek's or xAI's.
AUTO: Final = 0
OPENAI_RULES: Final = 1
DEEPSEEK_RULES: Final = 2
XAI_RULES: Final = 3


def xai_additive(u: dict[Any, Any]) -> bool:
    """Whether reasoning is *outside* completion_tokens: total = prompt + completion + reasoning.

    xAI reports reasoning "separately from completion_tokens, but ... in the total_tokens"
    (vercel/ai#12425). Under OpenAI semantics total = prompt + completion, so with reasoning > 0
    the two readings cannot both match the total.
    """
    cd = u.get("completion_tokens_details")
    if type(cd) is not dict:
        return False
    r = cd.get("reasoning_tokens")
    p = u.get("prompt_tokens")
    c = u.get("completion_tokens")
    if type(r) is not int or type(p) is not int or type(c) is not int or r <= 0:
        return False
    total = u.get("total_tokens")
    return type(total) is int and total == p + c + r


def chat_usage(u: dict[Any, Any], rules: int) -> Usage:
    """OpenAI-shaped usage: prompt_tokens includes cached tokens; the details are subsets.

    DeepSeek's cache hits come from ``prompt_cache_hit_tokens`` (never added to the mirrored
    ``prompt_tokens_details.cached_tokens``); xAI's reasoning is added to ``completion_tokens``.
    """
    # Each count is checked inline (no call unless it is bad, to name it): this is a hot path.
    p: Any = u.get("prompt_tokens")
    if type(p) is not int or not 0 <= p <= MAX_COUNT:
        check_count("prompt_tokens", p)
    c: Any = u.get("completion_tokens", 0)
    if type(c) is not int or not 0 <= c <= MAX_COUNT:
        check_count("completion_tokens", c)
    cached: Any = 0
    cache_write: Any = 0
    one_hour: Any = 0
    audio_in: Any = 0
    reasoning: Any = 0
    audio_out: Any = 0
    cached_name = "prompt_tokens_details.cached_tokens"
    pd = u.get("prompt_tokens_details")
    if pd is not None:
        if type(pd) is not dict:
            raise MalformedUsageError("prompt_tokens_details", pd, OBJECT)
        cached = pd.get("cached_tokens", 0)
        cache_write = pd.get("cache_write_tokens", 0)
        audio_in = pd.get("audio_tokens", 0)
        if (
            type(cached) is not int
            or type(cache_write) is not int
            or type(audio_in) is not int
            or not 0 <= cached <= MAX_COUNT
            or not 0 <= cache_write <= MAX_COUNT
            or not 0 <= audio_in <= MAX_COUNT
        ):
            cached = opt(pd, "cached_tokens", cached_name)
            cache_write = opt(pd, "cache_write_tokens", "prompt_tokens_details.cache_write_tokens")
            audio_in = opt(pd, "audio_tokens", "prompt_tokens_details.audio_tokens")
        if not cache_write and pd.get("cache_creation_tokens"):  # LiteLLM ~1.80-1.100's name
            cache_write = opt(pd, "cache_creation_tokens", "prompt_tokens_details.cache_creation_tokens")
        split = pd.get("cache_creation_token_details")
        if split is not None:  # LiteLLM's lifetimes of Anthropic cache writes
            one_hour = _one_hour_writes(split, cache_write)
    if not cache_write and u.get("cache_creation_input_tokens") and not _writes_in_prompt(pd):
        # LiteLLM before it moved Anthropic's cache writes into prompt_tokens (until about
        # 1.77): the writes sit beside prompt_tokens, at the top level, not inside it.
        cache_write = check_count("cache_creation_input_tokens", u["cache_creation_input_tokens"])
        p = check_count("prompt_tokens + cache_creation_input_tokens", p + cache_write)
    cd = u.get("completion_tokens_details")
    if cd is not None:
        if type(cd) is not dict:
            raise MalformedUsageError("completion_tokens_details", cd, OBJECT)
        reasoning = cd.get("reasoning_tokens", 0)
        audio_out = cd.get("audio_tokens", 0)
        if (
            type(reasoning) is not int
            or type(audio_out) is not int
            or not (0 <= reasoning <= MAX_COUNT and 0 <= audio_out <= MAX_COUNT)
        ):
            reasoning = opt(cd, "reasoning_tokens", "completion_tokens_details.reasoning_tokens")
            audio_out = opt(cd, "audio_tokens", "completion_tokens_details.audio_tokens")
    if rules == AUTO:
        if "prompt_cache_hit_tokens" in u:
            rules = DEEPSEEK_RULES
        elif reasoning and u.get("total_tokens") == p + c + reasoning:
            rules = XAI_RULES
    if rules == DEEPSEEK_RULES:
        hit = u.get("prompt_cache_hit_tokens")
        if hit is not None:
            cached_name = "prompt_cache_hit_tokens"
            cached = check_count(cached_name, hit)
    if cached + cache_write > p:
        if cache_write:
            raise MalformedUsageError(
                f"{cached_name} + prompt_tokens_details.cache_write_tokens",
                cached + cache_write,
                f"at most prompt_tokens ({p})",
            )
        raise MalformedUsageError(cached_name, cached, f"at most prompt_tokens ({p})")
    if audio_in > p:
        raise MalformedUsageError(
            "prompt_tokens_details.audio_tokens", audio_in, f"at most prompt_tokens ({p})"
        )
    if audio_out > c:
        raise MalformedUsageError(
            "completion_tokens_details.audio_tokens", audio_out, f"at most completion_tokens ({c})"
        )
    if rules == XAI_RULES:
        out = c + reasoning
        if out > MAX_COUNT:
            check_count("completion_tokens + completion_tokens_details.reasoning_tokens", out)
    else:
        if reasoning > c:
            raise MalformedUsageError(
                "completion_tokens_details.reasoning_tokens", reasoning, f"at most completion_tokens ({c})"
            )
        out = c
    # Every count went through check_count and every subset rule was checked above under the
    # provider's own field names, so build without re-validating: this is the hot path.
    return new_usage(p, cached, cache_write, one_hour, out, reasoning, audio_in, audio_out)


def _writes_in_prompt(pd: dict[Any, Any] | None) -> bool:
    """Whether LiteLLM's ``prompt_tokens_details`` says cache writes are counted in ``prompt_tokens``."""
    return pd is not None and (
        pd.get("cache_write_tokens") is not None or pd.get("cache_creation_tokens") is not None
    )


def _one_hour_writes(split: Any, cache_write: int) -> int:
    """``ephemeral_1h_input_tokens`` of LiteLLM's ``cache_creation_token_details``, within ``cache_write``."""
    name = "prompt_tokens_details.cache_creation_token_details"
    if type(split) is not dict:
        raise MalformedUsageError(name, split, OBJECT)
    one_hour = opt(split, "ephemeral_1h_input_tokens", f"{name}.ephemeral_1h_input_tokens")
    if one_hour > cache_write:
        raise MalformedUsageError(
            f"{name}.ephemeral_1h_input_tokens",
            one_hour,
            f"at most prompt_tokens_details.cache_write_tokens ({cache_write})",
        )
    return one_hour


def chat_auto(u: dict[Any, Any]) -> Usage:
    """OpenAI-shaped usage, the provider told by the block's own keys."""
    return chat_usage(u, AUTO)


def chat_openai(u: dict[Any, Any]) -> Usage:
    """OpenAI's reading of an OpenAI-shaped block."""
    return chat_usage(u, OPENAI_RULES)


def chat_deepseek(u: dict[Any, Any]) -> Usage:
    """DeepSeek's reading: cache hits from ``prompt_cache_hit_tokens``."""
    return chat_usage(u, DEEPSEEK_RULES)


def chat_xai(u: dict[Any, Any]) -> Usage:
    """XAI's reading: reasoning added to ``completion_tokens``."""
    return chat_usage(u, XAI_RULES)


def provider_of_chat(block: Any, body: dict[Any, Any]) -> str:
    """The provider an OpenAI-shaped payload's own keys reveal (else ``"openai"``, the format)."""
    if block is not None:
        if "prompt_cache_hit_tokens" in block:
            return "deepseek"
        if "queue_time" in block:
            return "groq"
        if xai_additive(block):
            return "x_ai"
    if "x_groq" in body:
        return "groq"
    return "openai"


_RESPONSES_NAMES: Final = (
    "input_tokens",
    "input_tokens_details.cached_tokens",
    "input_tokens_details.cache_write_tokens",
    "cache_write_1h_tokens",
    "output_tokens",
    "output_tokens_details.reasoning_tokens",
    "audio_input_tokens",
    "audio_output_tokens",
)


def responses_usage(u: dict[Any, Any]) -> Usage:
    """OpenAI Responses: input_tokens includes cache reads and writes; output includes reasoning."""
    i = check_count("input_tokens", u.get("input_tokens"))
    o = check_count("output_tokens", u.get("output_tokens"))
    cached = cache_write = reasoning = 0
    itd = details(u, "input_tokens_details")
    if itd is not None:
        cached = opt(itd, "cached_tokens", _RESPONSES_NAMES[1])
        cache_write = opt(itd, "cache_write_tokens", _RESPONSES_NAMES[2])
    otd = details(u, "output_tokens_details")
    if otd is not None:
        reasoning = opt(otd, "reasoning_tokens", _RESPONSES_NAMES[5])
    if cached + cache_write > i:
        name = f"{_RESPONSES_NAMES[1]} + cache_write_tokens" if cache_write else _RESPONSES_NAMES[1]
        raise MalformedUsageError(name, cached + cache_write, f"at most input_tokens ({i})")
    if reasoning > o:
        raise MalformedUsageError(_RESPONSES_NAMES[5], reasoning, f"at most output_tokens ({o})")
    return checked_usage(_RESPONSES_NAMES, i, cached, cache_write, 0, o, reasoning, 0, 0)


# --------------------------------------------------------------------------------------------
# Streams


RESPONSE_LIFECYCLE: Final = frozenset(
    {"response.created", "response.queued", "response.in_progress", "response.completed",
     "response.incomplete", "response.failed"}
)  # fmt: skip
"""Responses events that carry the whole ``response`` object (the others are deltas)."""


def chat_chunk(acc: StreamState, d: dict[Any, Any]) -> None:
    """A chat stream chunk: the last non-null ``usage`` (or ``x_groq.usage``) wins."""
    if acc.model is None:
        acc.capture(d.get("model"), d.get("id"))
    if acc.service_tier is None and d.get("service_tier") is not None:
        acc.service_tier = service_tier_of(OAI, d, None)
    u = d.get("usage")
    if u is None:
        xg = d.get("x_groq")
        if xg is None:
            return
        if type(xg) is not dict:
            raise MalformedUsageError("x_groq", xg, OBJECT)
        u = xg.get("usage")
        if u is None:
            return
        name = "x_groq.usage"
    else:
        name = "usage"
    if type(u) is not dict:
        raise MalformedUsageError(name, u, OBJECT)
    acc.usage = acc.rules(u)
    if "cost" in u or "cost_details" in u:
        acc.reported_cost = reported_cost_of(u)
    if not acc.given:
        acc.provider = provider_of_chat(u, d)
        acc.api = CHAT_APIS.get((acc.provider, "chat"), "openai.chat")


def reduce_chat_chunk(acc: StreamState, obj: Any) -> dict[Any, Any] | None:
    """A chat chunk object as the dict `chat_chunk` needs, or ``None`` when it carries no usage."""
    u = getattr(obj, "usage", None)
    if u is None and acc.provider == "groq":
        xg = getattr(obj, "x_groq", None)
        if xg is not None:
            xu = xg.get("usage") if type(xg) is dict else getattr(xg, "usage", None)
            if xu is not None:
                return {"x_groq": {"usage": plain_dict(xu)}, "model": getattr(obj, "model", None)}
    if u is None:
        if acc.model is None:
            acc.capture(getattr(obj, "model", None), getattr(obj, "id", None))
        return None
    return {
        "usage": plain_dict(u),
        "model": getattr(obj, "model", None),
        "id": getattr(obj, "id", None),
        "service_tier": getattr(obj, "service_tier", None),
    }


def responses_event(acc: StreamState, d: dict[Any, Any]) -> None:
    """A Responses stream event: ``response.usage`` of the terminal event wins."""
    r = d.get("response")
    if r is None:
        return  # a delta event
    if type(r) is not dict:
        raise MalformedUsageError("response", r, "an object")
    acc.capture(r.get("model"), r.get("id"))
    u = r.get("usage")
    if u is None:
        return  # response.created / response.in_progress carry usage: null
    if type(u) is not dict:
        raise MalformedUsageError("response.usage", u, OBJECT)
    acc.usage = with_responses_tools(responses_usage(u), r.get("output"))


def reduce_responses_event(acc: StreamState, obj: Any) -> dict[Any, Any] | None:
    """A Responses event object as the dict `responses_event` needs, or ``None`` for a delta."""
    t = getattr(obj, "type", None)
    if type(t) is not str or t not in RESPONSE_LIFECYCLE:
        return None  # a delta event: reading a missing .response would cost microseconds
    r = getattr(obj, "response", None)
    if r is None:
        return None
    u = getattr(r, "usage", None)
    return {
        "type": getattr(obj, "type", None),
        "response": {
            "usage": None if u is None else plain_dict(u),
            "model": getattr(r, "model", None),
            "id": getattr(r, "id", None),
            "output": None if u is None else [_tool_item(item) for item in getattr(r, "output", None) or ()],
        },
    }


def _tool_item(item: Any) -> dict[str, Any]:
    """What `with_responses_tools` reads of an output item object: its type, action and container."""
    action = getattr(item, "action", None)
    return {
        "type": getattr(item, "type", None),
        "action": None if action is None else {"type": getattr(action, "type", None)},
        "container_id": getattr(item, "container_id", None),
    }
