"""Normalisation of provider usage payloads into the canonical, inclusive `Usage`.

Every provider counts tokens its own way: OpenAI's ``prompt_tokens`` includes cached tokens,
Anthropic's ``input_tokens`` excludes them, Gemini's ``candidatesTokenCount`` excludes
thoughts, xAI's ``completion_tokens`` excludes reasoning. This module applies each provider's
rules (see ``usage_semantics.md``) so that ``input_tokens`` always counts every prompt-side
token and ``output_tokens`` every generated one.

A payload is recognised by its *shape* (a few cheap key checks, no regex, no pydantic on the
dict path); a provider name, when given, selects that provider's rules and must fit the shape.
"""

from __future__ import annotations as _annotations

import dataclasses
import json
from collections.abc import Callable, Mapping
from typing import Any, Final

from meterline._providers import canonical_provider
from meterline._usage import (
    MAX_COUNT,
    USAGE_FIELDS,
    Usage,
    _new_usage,
    check_count,
    checked_usage,
    mutable_twin,
)
from meterline.exceptions import ConfigurationError, MalformedUsageError, UnrecognizedPayloadError

__all__ = ["APIS", "Extracted", "extract", "model_from", "usage_from"]

_OBJECT: Final = "an object or null"

# Shape families: what a usage block looks like, independent of the endpoint.
_OAI: Final = "oai"  # prompt_tokens / completion_tokens: OpenAI chat, Mistral, DeepSeek, Groq, xAI
_RESPONSES: Final = "responses"  # input_tokens + input_tokens_details (OpenAI Responses)
_ANTHROPIC: Final = "anthropic"  # input_tokens + cache_*_input_tokens (Anthropic Messages)
_PLAIN: Final = "plain"  # only input_tokens / output_tokens: Anthropic and Responses agree on it
_GEMINI: Final = "gemini"  # promptTokenCount ... (camelCase wire or snake_case google-genai)
_BEDROCK: Final = "bedrock"  # inputTokens / outputTokens (Converse)
_COHERE: Final = "cohere"  # billed_units (Cohere v2)
_OLLAMA: Final = "ollama"  # prompt_eval_count / eval_count at the top level

# Rules for the OpenAI-shaped family.
_AUTO: Final = 0
_OPENAI_RULES: Final = 1
_DEEPSEEK_RULES: Final = 2
_XAI_RULES: Final = 3


@dataclasses.dataclass(frozen=True, slots=True)
class Extracted:
    """What meterline reads from one provider response: usage plus identifying metadata."""

    provider: str | None
    """Canonical provider name (``gen_ai.provider.name``): the one given, else the one detected from
    the payload's format, or ``None`` when the format does not say (a bare usage block)."""
    model: str | None
    """The model id served, as the body reports it (often dated, e.g. ``gpt-4o-2024-08-06``); ``None``
    when the body has none (Bedrock Converse, Cohere v2, bare usage blocks)."""
    usage: Usage | None
    """The canonical, inclusive usage, or ``None`` when the payload carries no usage."""
    response_id: str | None
    """The provider's response id (``gen_ai.response.id``), when the body has one."""
    api: str
    """The API the payload came from, e.g. ``"openai.chat"`` or ``"anthropic.messages"`` (see `APIS`);
    ``"unknown"`` for a bare ``{input_tokens, output_tokens}`` block."""
    unknown_fields: tuple[str, ...] = ()
    """Canonical fields reported as 0 because the provider omitted them, e.g. ``("input_tokens",)``
    when Ollama served the prompt from its KV cache and sent no ``prompt_eval_count``."""


_ExtractedBuilder = mutable_twin(Extracted)


def _new_extracted(
    provider: str | None,
    model: str | None,
    usage: Usage | None,
    response_id: str | None,
    api: str,
    unknown_fields: tuple[str, ...],
) -> Extracted:
    """Build an `Extracted` without the frozen dataclass's per-field ``object.__setattr__`` (~1.5 µs)."""
    built: Any = _ExtractedBuilder(provider, model, usage, response_id, api, unknown_fields)
    built.__class__ = Extracted
    return built  # type: ignore[no-any-return]


APIS: Final = (
    "openai.chat",
    "openai.completions",
    "openai.embeddings",
    "openai.responses",
    "anthropic.messages",
    "gemini.generate_content",
    "bedrock.converse",
    "mistral.chat",
    "mistral.embeddings",
    "cohere.chat",
    "deepseek.chat",
    "groq.chat",
    "xai.chat",
    "ollama.chat",
    "ollama.generate",
    "ollama.embed",
)
"""The values of `Extracted.api` (besides ``"unknown"``), accepted by ``extract(api=...)``."""

_API_FAMILY: Final[dict[str, str]] = {
    "openai.chat": _OAI,
    "openai.completions": _OAI,
    "openai.embeddings": _OAI,
    "openai.responses": _RESPONSES,
    "anthropic.messages": _ANTHROPIC,
    "gemini.generate_content": _GEMINI,
    "bedrock.converse": _BEDROCK,
    "mistral.chat": _OAI,
    "mistral.embeddings": _OAI,
    "cohere.chat": _COHERE,
    "deepseek.chat": _OAI,
    "groq.chat": _OAI,
    "xai.chat": _OAI,
    "ollama.chat": _OLLAMA,
    "ollama.generate": _OLLAMA,
    "ollama.embed": _OLLAMA,
}

_API_PROVIDER: Final[dict[str, str]] = {
    "openai.chat": "openai",
    "openai.completions": "openai",
    "openai.embeddings": "openai",
    "openai.responses": "openai",
    "anthropic.messages": "anthropic",
    "gemini.generate_content": "gcp.gemini",
    "bedrock.converse": "aws.bedrock",
    "mistral.chat": "mistral_ai",
    "mistral.embeddings": "mistral_ai",
    "cohere.chat": "cohere",
    "deepseek.chat": "deepseek",
    "groq.chat": "groq",
    "xai.chat": "x_ai",
    "ollama.chat": "ollama",
    "ollama.generate": "ollama",
    "ollama.embed": "ollama",
}

_ALL_FAMILIES: Final = frozenset({_OAI, _RESPONSES, _ANTHROPIC, _PLAIN, _GEMINI, _BEDROCK, _COHERE, _OLLAMA})

# The shapes each known provider serves. Custom providers accept every shape.
_ACCEPTS: Final[dict[str, frozenset[str]]] = {
    "openai": frozenset({_OAI, _RESPONSES, _PLAIN}),
    "azure.ai.openai": frozenset({_OAI, _RESPONSES, _PLAIN}),
    "azure.ai.inference": frozenset({_OAI, _RESPONSES, _PLAIN}),
    "anthropic": frozenset({_ANTHROPIC, _PLAIN}),
    "gcp.gemini": frozenset({_GEMINI}),
    "gcp.gen_ai": frozenset({_GEMINI}),
    # Vertex AI also serves Claude (Anthropic bodies) and an OpenAI-compatible endpoint.
    "gcp.vertex_ai": frozenset({_GEMINI, _ANTHROPIC, _OAI}),
    # Bedrock InvokeModel returns the model vendor's body (Anthropic's for Claude).
    "aws.bedrock": frozenset({_BEDROCK, _ANTHROPIC, _PLAIN, _OAI}),
    "mistral_ai": frozenset({_OAI}),
    "cohere": frozenset({_COHERE, _PLAIN}),
    "deepseek": frozenset({_OAI}),
    "groq": frozenset({_OAI, _RESPONSES, _PLAIN}),
    "x_ai": frozenset({_OAI, _RESPONSES, _PLAIN}),
    "ollama": frozenset({_OLLAMA, _OAI}),
}

_FAMILY_PROVIDER: Final[dict[str, str | None]] = {
    _RESPONSES: "openai",
    _ANTHROPIC: "anthropic",
    _PLAIN: None,
    _GEMINI: "gcp.gemini",
    _BEDROCK: "aws.bedrock",
    _COHERE: "cohere",
    _OLLAMA: "ollama",
}

_FAMILY_API: Final[dict[str, str]] = {
    _RESPONSES: "openai.responses",
    _ANTHROPIC: "anthropic.messages",
    _GEMINI: "gemini.generate_content",
    _BEDROCK: "bedrock.converse",
    _COHERE: "cohere.chat",
}

_PLAIN_API: Final[dict[str | None, str]] = {
    "anthropic": "anthropic.messages",
    "aws.bedrock": "anthropic.messages",
    "cohere": "cohere.chat",
    "openai": "openai.responses",
    "azure.ai.openai": "openai.responses",
    "azure.ai.inference": "openai.responses",
    "groq": "openai.responses",
    "x_ai": "openai.responses",
}

_OAI_API: Final[dict[tuple[str | None, str], str]] = {
    ("mistral_ai", "chat"): "mistral.chat",
    ("mistral_ai", "embeddings"): "mistral.embeddings",
    ("deepseek", "chat"): "deepseek.chat",
    ("groq", "chat"): "groq.chat",
    ("x_ai", "chat"): "xai.chat",
}

_OAI_ENDPOINT: Final[dict[str, str]] = {
    "chat.completion": "chat",
    "chat.completion.chunk": "chat",
    "text_completion": "completions",
    "list": "embeddings",
}

_SDK_PROVIDERS: Final[dict[str, str]] = {
    "anthropic": "anthropic",
    "groq": "groq",
    "mistralai": "mistral_ai",
    "cohere": "cohere",
    "ollama": "ollama",
}
"""Top-level SDK package -> provider, for SDK objects (the OpenAI SDK serves many providers)."""


# --------------------------------------------------------------------------------------------
# Public API


def usage_from(obj: Any, provider: str | None = None) -> Usage | None:
    """Return the canonical usage carried by a provider response.

    Args:
        obj: A response body as a dict, its JSON text (``str``, ``bytes``, ``bytearray``), an SDK
            response or usage object (openai, anthropic, google-genai, ...), a bare usage block
            such as ``{"prompt_tokens": 10, "completion_tokens": 5}``, or a `Usage` (returned as is).
        provider: The provider name or alias (see `canonical_provider`); selects that provider's
            rules. ``None`` detects the format from the payload.

    Returns:
        The usage in inclusive form, or ``None`` when the payload carries no usage (``usage: null``,
        an Ollama model load, a streamed chunk before the final one).

    Raises:
        UnrecognizedPayloadError: when the payload has no known shape, or does not fit ``provider``.
        MalformedUsageError: when a count is not a non-negative int or a subset exceeds its total.
        ConfigurationError: when ``provider`` is not a valid provider name.
    """
    hint = None
    if type(obj) is dict:
        if provider is None:
            # Fast paths for the unambiguous bodies: OpenAI-shaped chat (OpenAI, Mistral,
            # DeepSeek, Groq, xAI), an Anthropic Message, a Gemini response.
            u = obj.get("usage")
            if type(u) is dict:
                if "prompt_tokens" in u:
                    return _oai(u, _AUTO)
                if obj.get("type") == "message" and "input_tokens" in u:
                    return _anthropic(u)
            elif u is None:
                um = obj.get("usageMetadata")
                if type(um) is dict:
                    return _gemini(um)
        body = obj
    elif type(obj) is Usage:
        return obj
    else:
        body, hint = _to_dict(obj)
    family, block, body = _locate(body)
    if provider is None and hint is not None and family in _ACCEPTS[hint]:
        provider = hint
    canonical = canonical_provider(provider)
    if canonical is not None:
        _check_accepts(canonical, family, body)
    if block is None:
        return None
    return _rules(family, canonical)(block)


def extract(obj: Any, provider: str | None = None, api: str | None = None) -> Extracted:
    """Read usage, served model, response id and API from a provider response.

    Args:
        obj: What `usage_from` accepts.
        provider: The provider name or alias; selects its rules. ``None`` detects the format.
        api: One of `APIS`, to force that API's rules when the shape alone is ambiguous (for
            example a bare ``{"input_tokens", "output_tokens"}`` block). ``None`` detects it.

    Returns:
        An `Extracted`.

    Raises:
        UnrecognizedPayloadError: when the payload has no known shape, or does not fit
            ``provider`` or ``api``.
        MalformedUsageError: when a count is not a non-negative int or a subset exceeds its total.
        ConfigurationError: when ``provider`` or ``api`` is not a valid name.
    """
    hint = None
    if type(obj) is dict:
        body = obj
    elif type(obj) is Usage:
        return _new_extracted(canonical_provider(provider), None, obj, None, api or "unknown", ())
    else:
        body, hint = _to_dict(obj)
    family, block, body = _locate(body)
    canonical = canonical_provider(provider)
    label: str | None
    if api is not None:
        api_family = _API_FAMILY.get(api)
        if api_family is None:
            raise ConfigurationError(f"unknown api {api!r}: use one of {', '.join(APIS)}")
        if api_family != family and not (
            family == _PLAIN and api_family in {_RESPONSES, _ANTHROPIC, _COHERE}
        ):
            raise UnrecognizedPayloadError(f"payload does not fit api {api!r}: received {_describe(body)}")
        label = canonical if canonical is not None else _API_PROVIDER[api]
        rules = _api_rules(api)
        api_name = api
    else:
        if canonical is not None:
            _check_accepts(canonical, family, body)
            label = canonical
        elif hint is not None and family in _ACCEPTS[hint]:
            label = hint
        elif family == _OAI:
            label = _oai_provider(block, body)
        else:
            label = _FAMILY_PROVIDER[family]
        rules = _rules(family, label)
        api_name = _api_name(family, body, label)
    usage = None if block is None else rules(block)
    unknown: tuple[str, ...] = ()
    if family == _OLLAMA and usage is not None:
        unknown = _ollama_unknown(body, api_name)
    return _new_extracted(label, _model(family, body), usage, _response_id(family, body), api_name, unknown)


def model_from(obj: Any) -> str | None:
    """Return the served model id a response body reports, or ``None`` when it has none.

    Args:
        obj: What `usage_from` accepts.

    Raises:
        UnrecognizedPayloadError: when the payload has no known shape.
    """
    body = obj if type(obj) is dict else _to_dict(obj)[0]
    family, _block, body = _locate(body)
    return _model(family, body)


# --------------------------------------------------------------------------------------------
# Conversion of non-dict payloads


def _to_dict(obj: Any) -> tuple[dict[Any, Any], str | None]:
    """Convert JSON text, a mapping, an SDK (pydantic) object or a dataclass to a dict.

    Returns:
        The dict and, for an SDK object whose package fixes the provider, that provider.
    """
    if isinstance(obj, str | bytes | bytearray):
        return _parse_json(obj), None
    if isinstance(obj, Mapping):
        return dict(obj), None
    if isinstance(obj, type):
        raise UnrecognizedPayloadError(f"cannot read usage from the class {obj.__qualname__}")
    if callable(getattr(type(obj), "model_dump", None)):
        data = _dump(obj)
        module = type(obj).__module__
        root = module.partition(".")[0]
        hint = _SDK_PROVIDERS.get(root)
        if hint is None and module.startswith("google.genai"):
            hint = "gcp.gemini"
        if hint == "cohere":
            _cohere_sdk_floats(data)
        return data, hint
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj), None
    raise UnrecognizedPayloadError(
        f"cannot read usage from {type(obj).__qualname__}: expected a dict, JSON text, or an SDK "
        "response or usage object"
    )


def _dump(obj: Any) -> dict[Any, Any]:
    """Dump a pydantic v2 model to a dict with wire (alias) names: google-genai's are camelCase."""
    try:
        data = obj.model_dump(by_alias=True, warnings=False)
    except Exception as exc:
        raise UnrecognizedPayloadError(f"cannot dump {type(obj).__qualname__} with model_dump()") from exc
    if type(data) is not dict:
        raise UnrecognizedPayloadError(f"{type(obj).__qualname__}.model_dump() did not return a dict")
    return data


def _parse_json(text: str | bytes | bytearray) -> dict[Any, Any]:
    """Parse one JSON object; errors never quote the text (it may hold prompt content)."""
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise UnrecognizedPayloadError(
            f"{type(text).__name__} payload of length {len(text)} is not valid JSON ({type(exc).__name__})"
        ) from None
    if type(data) is not dict:
        raise UnrecognizedPayloadError(f"JSON payload is a {type(data).__name__}, not an object")
    return data


def _cohere_sdk_floats(data: dict[Any, Any]) -> None:
    """Turn integral float counts back into ints: the Cohere SDK types billed units as ``float``."""
    usage = data.get("usage")
    units = usage.get("billed_units") if type(usage) is dict else None
    if type(units) is dict:
        for key, value in units.items():
            if type(value) is float and value.is_integer() and value >= 0:
                units[key] = int(value)


def _describe(obj: object) -> str:
    """Describe a payload by type and top-level keys, never by values (no prompt text in errors)."""
    if type(obj) is dict:
        keys = [str(key)[:40] for key in list(obj)[:16]]
        more = ", ..." if len(obj) > 16 else ""
        return f"dict with keys [{', '.join(keys)}{more}]"
    return type(obj).__qualname__


# --------------------------------------------------------------------------------------------
# Shape detection


def _locate(d: dict[Any, Any]) -> tuple[str, Any, dict[Any, Any]]:
    """Find the shape family, the usage block (``None`` when absent) and the body holding them.

    The body differs from ``d`` when ``d`` wraps a response (an OpenAI Responses stream event,
    an Anthropic ``message_start`` event).

    Raises:
        UnrecognizedPayloadError: when ``d`` has no known shape.
        MalformedUsageError: when ``usage`` is neither an object nor null.
    """
    if "usage" in d:
        u = d["usage"]
        if type(u) is dict:
            family = _usage_family(u, d)
            if family is not None:
                return family, u, d
            raise UnrecognizedPayloadError(
                f"unrecognised usage payload: {_describe(d)}, usage {_describe(u)}"
            )
        if u is not None:
            raise MalformedUsageError("usage", u, _OBJECT)
        xg = d.get("x_groq")
        if type(xg) is dict and xg.get("usage") is not None:
            # Groq streams report usage in x_groq.usage on the final chunk.
            xu = xg["usage"]
            if type(xu) is not dict:
                raise MalformedUsageError("x_groq.usage", xu, _OBJECT)
            return _OAI, xu, d
        family = _body_family(d)
        if family is None:
            raise UnrecognizedPayloadError(f"unrecognised usage payload: {_describe(d)}")
        return family, None, d
    for key in ("usageMetadata", "usage_metadata"):
        if key in d:
            um = d[key]
            if um is not None and type(um) is not dict:
                raise MalformedUsageError(key, um, _OBJECT)
            return _GEMINI, um, d
    if "prompt_eval_count" in d or "eval_count" in d or ("done" in d and "model" in d):
        return _OLLAMA, d, d
    if "prompt_tokens" in d:
        return _OAI, d, d
    if "input_tokens" in d or "output_tokens" in d:
        return _io_family(d, d), d, d
    if "inputTokens" in d or "outputTokens" in d:
        return _BEDROCK, d, d
    if (
        "promptTokenCount" in d
        or "prompt_token_count" in d
        or "totalTokenCount" in d
        or "total_token_count" in d
    ):
        return _GEMINI, d, d
    if "billed_units" in d:
        return _COHERE, d, d
    return _wrapped(d)


def _wrapped(d: dict[Any, Any]) -> tuple[str, Any, dict[Any, Any]]:
    """Locate usage in an event that wraps a response, or in a body with no usage at all."""
    t = d.get("type")
    if type(t) is str:
        inner = (
            d.get("response")
            if t.startswith("response.")
            else d.get("message")
            if t == "message_start"
            else None
        )
        if type(inner) is dict:
            return _locate(inner)
        if t == "message-end":
            delta = d.get("delta")
            if type(delta) is not dict:
                raise MalformedUsageError("delta", delta, "an object")
            u = delta.get("usage")
            if u is not None and type(u) is not dict:
                raise MalformedUsageError("delta.usage", u, _OBJECT)
            return _COHERE, u, d
    md = d.get("metadata")
    if type(md) is dict and "usage" in md:
        # A Bedrock ConverseStream metadata event.
        u = md["usage"]
        if u is not None and type(u) is not dict:
            raise MalformedUsageError("metadata.usage", u, _OBJECT)
        return _BEDROCK, u, d
    family = _body_family(d)
    if family is None:
        raise UnrecognizedPayloadError(f"unrecognised usage payload: {_describe(d)}")
    return family, None, d


def _usage_family(u: dict[Any, Any], d: dict[Any, Any]) -> str | None:
    if "prompt_tokens" in u:
        return _OAI
    if "input_tokens" in u or "output_tokens" in u:
        return _io_family(u, d)
    if "inputTokens" in u or "outputTokens" in u:
        return _BEDROCK
    if "billed_units" in u or "tokens" in u:
        return _COHERE
    return None


def _io_family(u: dict[Any, Any], d: dict[Any, Any]) -> str:
    """Tell Anthropic (exclusive input) from OpenAI Responses (inclusive input) by their extra keys."""
    if "input_tokens_details" in u:
        return _RESPONSES
    if (
        "cache_creation_input_tokens" in u
        or "cache_read_input_tokens" in u
        or "cache_creation" in u
        or "server_tool_use" in u
    ):
        return _ANTHROPIC
    details = u.get("output_tokens_details")
    if type(details) is dict:
        if "thinking_tokens" in details:
            return _ANTHROPIC
        if "reasoning_tokens" in details:
            return _RESPONSES
    if d.get("type") == "message":
        return _ANTHROPIC
    if d.get("object") == "response":
        return _RESPONSES
    return _PLAIN


def _body_family(d: dict[Any, Any]) -> str | None:
    """The family of a body that carries no usage block, from its other keys."""
    obj = d.get("object")
    if obj == "response":
        return _RESPONSES
    if (type(obj) is str and obj in _OAI_ENDPOINT) or "choices" in d:
        return _OAI
    if d.get("type") == "message":
        return _ANTHROPIC
    if "candidates" in d or "promptFeedback" in d or "prompt_feedback" in d or "modelVersion" in d:
        return _GEMINI
    if "stopReason" in d and "output" in d:
        return _BEDROCK
    if "finish_reason" in d and "message" in d:
        return _COHERE
    if "done_reason" in d or "done" in d:
        return _OLLAMA
    return None


def _check_accepts(provider: str, family: str, body: dict[Any, Any]) -> None:
    if family not in _ACCEPTS.get(provider, _ALL_FAMILIES):
        raise UnrecognizedPayloadError(
            f"payload does not fit provider {provider!r}: received {_describe(body)} ({family}-shaped)"
        )


# --------------------------------------------------------------------------------------------
# Metadata


def _oai_provider(block: Any, body: dict[Any, Any]) -> str:
    """The provider an OpenAI-shaped payload's own keys reveal (else ``"openai"``, the format)."""
    if block is not None:
        if "prompt_cache_hit_tokens" in block:
            return "deepseek"
        if "queue_time" in block:
            return "groq"
        if _xai_additive(block):
            return "x_ai"
    if "x_groq" in body:
        return "groq"
    return "openai"


def _api_name(family: str, body: dict[Any, Any], provider: str | None) -> str:
    if family == _OAI:
        obj = body.get("object")
        endpoint = _OAI_ENDPOINT.get(obj, "chat") if type(obj) is str else "chat"
        return _OAI_API.get((provider, endpoint)) or f"openai.{endpoint}"
    if family == _OLLAMA:
        if "message" in body:
            return "ollama.chat"
        if type(body.get("response")) is str:
            return "ollama.generate"
        if "embeddings" in body or "embedding" in body:
            return "ollama.embed"
        return "ollama.chat"
    if family == _PLAIN:
        return _PLAIN_API.get(provider, "unknown")
    return _FAMILY_API[family]


def _model(family: str, body: dict[Any, Any]) -> str | None:
    if family == _GEMINI:
        model = body.get("modelVersion") or body.get("model_version")
    elif family in {_BEDROCK, _COHERE}:
        return None
    else:
        model = body.get("model")
    return model if type(model) is str and model else None


def _response_id(family: str, body: dict[Any, Any]) -> str | None:
    if family == _GEMINI:
        rid = body.get("responseId") or body.get("response_id")
    elif family in {_BEDROCK, _OLLAMA}:
        return None
    else:
        rid = body.get("id")
    return rid if type(rid) is str and rid else None


def _ollama_unknown(body: dict[Any, Any], api: str) -> tuple[str, ...]:
    # Ollama drops prompt_eval_count when the prompt came from its KV cache (ollama/ollama#2068):
    # the input is unknown, not zero. Embeddings have no output to report.
    missing_in = body.get("prompt_eval_count") is None
    missing_out = body.get("eval_count") is None and api != "ollama.embed"
    if missing_in:
        return ("input_tokens", "output_tokens") if missing_out else ("input_tokens",)
    return ("output_tokens",) if missing_out else ()


# --------------------------------------------------------------------------------------------
# Rules: provider usage block -> Usage


def _rules(family: str, provider: str | None) -> Callable[[Any], Usage | None]:
    if family == _OAI:
        if provider == "deepseek":
            return _oai_deepseek
        if provider == "x_ai":
            return _oai_xai
        if provider is None or provider not in _ACCEPTS:
            return _oai_auto
        return _oai_openai
    return _FAMILY_RULES[family]


def _api_rules(api: str) -> Callable[[Any], Usage | None]:
    if api == "deepseek.chat":
        return _oai_deepseek
    if api == "xai.chat":
        return _oai_xai
    family = _API_FAMILY[api]
    return _oai_openai if family == _OAI else _FAMILY_RULES[family]


def _opt(block: dict[Any, Any], key: str, name: str) -> int:
    """An optional count: absent or null is 0."""
    value = block.get(key)
    return 0 if value is None else check_count(name, value)


def _details(block: dict[Any, Any], key: str) -> dict[Any, Any] | None:
    value = block.get(key)
    if value is None or type(value) is dict:
        return value
    raise MalformedUsageError(key, value, _OBJECT)


def _xai_additive(u: dict[Any, Any]) -> bool:
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


def _oai(u: dict[Any, Any], rules: int) -> Usage:
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
    audio_in: Any = 0
    reasoning: Any = 0
    audio_out: Any = 0
    cached_name = "prompt_tokens_details.cached_tokens"
    pd = u.get("prompt_tokens_details")
    if pd is not None:
        if type(pd) is not dict:
            raise MalformedUsageError("prompt_tokens_details", pd, _OBJECT)
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
            cached = _opt(pd, "cached_tokens", cached_name)
            cache_write = _opt(pd, "cache_write_tokens", "prompt_tokens_details.cache_write_tokens")
            audio_in = _opt(pd, "audio_tokens", "prompt_tokens_details.audio_tokens")
    cd = u.get("completion_tokens_details")
    if cd is not None:
        if type(cd) is not dict:
            raise MalformedUsageError("completion_tokens_details", cd, _OBJECT)
        reasoning = cd.get("reasoning_tokens", 0)
        audio_out = cd.get("audio_tokens", 0)
        if (
            type(reasoning) is not int
            or type(audio_out) is not int
            or not (0 <= reasoning <= MAX_COUNT and 0 <= audio_out <= MAX_COUNT)
        ):
            reasoning = _opt(cd, "reasoning_tokens", "completion_tokens_details.reasoning_tokens")
            audio_out = _opt(cd, "audio_tokens", "completion_tokens_details.audio_tokens")
    if rules == _AUTO:
        if "prompt_cache_hit_tokens" in u:
            rules = _DEEPSEEK_RULES
        elif reasoning and u.get("total_tokens") == p + c + reasoning:
            rules = _XAI_RULES
    if rules == _DEEPSEEK_RULES:
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
    if rules == _XAI_RULES:
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
    return _new_usage(p, cached, cache_write, 0, out, reasoning, audio_in, audio_out)


def _oai_auto(u: dict[Any, Any]) -> Usage:
    return _oai(u, _AUTO)


def _oai_openai(u: dict[Any, Any]) -> Usage:
    return _oai(u, _OPENAI_RULES)


def _oai_deepseek(u: dict[Any, Any]) -> Usage:
    return _oai(u, _DEEPSEEK_RULES)


def _oai_xai(u: dict[Any, Any]) -> Usage:
    return _oai(u, _XAI_RULES)


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


def _responses(u: dict[Any, Any]) -> Usage:
    """OpenAI Responses: input_tokens includes cache reads and writes; output includes reasoning."""
    i = check_count("input_tokens", u.get("input_tokens"))
    o = check_count("output_tokens", u.get("output_tokens"))
    cached = cache_write = reasoning = 0
    itd = _details(u, "input_tokens_details")
    if itd is not None:
        cached = _opt(itd, "cached_tokens", _RESPONSES_NAMES[1])
        cache_write = _opt(itd, "cache_write_tokens", _RESPONSES_NAMES[2])
    otd = _details(u, "output_tokens_details")
    if otd is not None:
        reasoning = _opt(otd, "reasoning_tokens", _RESPONSES_NAMES[5])
    if cached + cache_write > i:
        name = f"{_RESPONSES_NAMES[1]} + cache_write_tokens" if cache_write else _RESPONSES_NAMES[1]
        raise MalformedUsageError(name, cached + cache_write, f"at most input_tokens ({i})")
    if reasoning > o:
        raise MalformedUsageError(_RESPONSES_NAMES[5], reasoning, f"at most output_tokens ({o})")
    return checked_usage(_RESPONSES_NAMES, i, cached, cache_write, 0, o, reasoning, 0, 0)


_ANTHROPIC_NAMES: Final = (
    "input_tokens + cache_creation_input_tokens + cache_read_input_tokens",
    "cache_read_input_tokens",
    "cache_creation_input_tokens",
    "cache_creation.ephemeral_1h_input_tokens",
    "output_tokens",
    "output_tokens_details.thinking_tokens",
    "audio_input_tokens",
    "audio_output_tokens",
)


def _anthropic(u: dict[Any, Any]) -> Usage:
    """Anthropic: input_tokens EXCLUDES cache reads and writes, which are added back."""
    # Each count is checked inline (no call unless it is bad, to name it): this is a hot path.
    uncached: Any = u.get("input_tokens")
    if type(uncached) is not int or not 0 <= uncached <= MAX_COUNT:
        check_count("input_tokens", uncached)
    o: Any = u.get("output_tokens")
    if type(o) is not int or not 0 <= o <= MAX_COUNT:
        check_count("output_tokens", o)
    read: Any = u.get("cache_read_input_tokens")
    if read is None:
        read = 0
    elif type(read) is not int or not 0 <= read <= MAX_COUNT:
        check_count("cache_read_input_tokens", read)
    hour = split = think = 0
    cc = u.get("cache_creation")
    if cc is not None:
        if type(cc) is not dict:
            raise MalformedUsageError("cache_creation", cc, _OBJECT)
        hour = _opt(cc, "ephemeral_1h_input_tokens", _ANTHROPIC_NAMES[3])
        split = _opt(cc, "ephemeral_5m_input_tokens", "cache_creation.ephemeral_5m_input_tokens") + hour
    cache_write: Any = u.get("cache_creation_input_tokens")
    if cache_write is None:
        cache_write = split
    elif type(cache_write) is not int or not 0 <= cache_write <= MAX_COUNT:
        check_count("cache_creation_input_tokens", cache_write)
    otd = u.get("output_tokens_details")
    if otd is not None:
        if type(otd) is not dict:
            raise MalformedUsageError("output_tokens_details", otd, _OBJECT)
        think = _opt(otd, "thinking_tokens", _ANTHROPIC_NAMES[5])
    if split > cache_write:
        # cache_creation_input_tokens = ephemeral_5m + ephemeral_1h: the split cannot exceed it.
        name = _ANTHROPIC_NAMES[3] if hour > cache_write else "cache_creation.ephemeral_5m + ephemeral_1h"
        value = hour if hour > cache_write else split
        raise MalformedUsageError(name, value, f"at most cache_creation_input_tokens ({cache_write})")
    if think > o:
        raise MalformedUsageError(_ANTHROPIC_NAMES[5], think, f"at most output_tokens ({o})")
    total_input = uncached + cache_write + read
    if total_input > MAX_COUNT:
        check_count(_ANTHROPIC_NAMES[0], total_input)
    # Every count is a valid int and every subset rule was checked under Anthropic's names.
    return _new_usage(total_input, read, cache_write, hour, o, think, 0, 0)


_GEMINI_CAMEL: Final = (
    "promptTokenCount",
    "cachedContentTokenCount",
    "candidatesTokenCount",
    "thoughtsTokenCount",
    "toolUsePromptTokenCount",
    "totalTokenCount",
    "promptTokensDetails",
    "candidatesTokensDetails",
    "tokenCount",
)
_GEMINI_SNAKE: Final = (
    "prompt_token_count",
    "cached_content_token_count",
    "candidates_token_count",
    "thoughts_token_count",
    "tool_use_prompt_token_count",
    "total_token_count",
    "prompt_tokens_details",
    "candidates_tokens_details",
    "token_count",
)


def _gemini(u: dict[Any, Any]) -> Usage | None:
    """Gemini: prompt includes cached, excludes tool-use prompt; candidates exclude thoughts.

    Every field is optional. A block with no count at all is no usage (``None``).
    """
    k = _GEMINI_SNAKE if ("prompt_token_count" in u or "total_token_count" in u) else _GEMINI_CAMEL
    prompt_v, cached_v, cand_v, thoughts_v, tool_v = (
        u.get(k[0]),
        u.get(k[1]),
        u.get(k[2]),
        u.get(k[3]),
        u.get(k[4]),
    )
    if prompt_v is None and cand_v is None and thoughts_v is None and tool_v is None and u.get(k[5]) is None:
        return None
    # Each count is checked inline (no call unless it is bad, to name it): this is a hot path.
    if prompt_v is None:
        prompt = 0
    elif type(prompt_v) is int and 0 <= prompt_v <= MAX_COUNT:
        prompt = prompt_v
    else:
        prompt = check_count(k[0], prompt_v)
    cached = _gemini_count(k[1], cached_v)
    cand = _gemini_count(k[2], cand_v)
    thoughts = _gemini_count(k[3], thoughts_v)
    tool = 0 if tool_v is None else check_count(k[4], tool_v)
    if cached > prompt:
        raise MalformedUsageError(k[1], cached, f"at most {k[0]} ({prompt})")
    audio_in = _gemini_audio(u, k[6], k[8])
    if audio_in > prompt:
        raise MalformedUsageError(f"{k[6]}[AUDIO].{k[8]}", audio_in, f"at most {k[0]} ({prompt})")
    audio_out = _gemini_audio(u, k[7], k[8])
    if audio_out > cand:
        raise MalformedUsageError(f"{k[7]}[AUDIO].{k[8]}", audio_out, f"at most {k[2]} ({cand})")
    names = _GEMINI_SNAKE_NAMES if k is _GEMINI_SNAKE else _GEMINI_CAMEL_NAMES
    total_input = prompt + tool
    total_output = cand + thoughts
    if total_input > MAX_COUNT or total_output > MAX_COUNT:
        check_count(names[0], total_input)
        check_count(names[4], total_output)
    # Subsets: cached and audio input were checked against the prompt, audio output against
    # the candidates, and thoughts are part of the output by construction.
    return _new_usage(total_input, cached, 0, 0, total_output, thoughts, audio_in, audio_out)


def _gemini_count(name: str, value: object) -> int:
    """An optional Gemini count: absent is 0."""
    if value is None:
        return 0
    if type(value) is int and 0 <= value <= MAX_COUNT:
        return value
    return check_count(name, value)


def _gemini_names(k: tuple[str, ...]) -> tuple[str, str, str, str, str, str, str, str]:
    """What to call each canonical field in errors, in one Gemini dialect."""
    return (
        f"{k[0]} + {k[4]}",
        k[1],
        "cache_write_tokens",
        "cache_write_1h_tokens",
        f"{k[2]} + {k[3]}",
        k[3],
        k[6],
        k[7],
    )


_GEMINI_CAMEL_NAMES: Final = _gemini_names(_GEMINI_CAMEL)
_GEMINI_SNAKE_NAMES: Final = _gemini_names(_GEMINI_SNAKE)


def _gemini_audio(u: dict[Any, Any], key: str, count_key: str) -> int:
    """Sum the AUDIO entries of a ``[{modality, tokenCount}]`` breakdown."""
    entries = u.get(key)
    if entries is None:
        return 0
    if type(entries) is not list:
        raise MalformedUsageError(key, entries, "a list of {modality, tokenCount} objects or null")
    total = 0
    for entry in entries:
        if type(entry) is not dict:
            raise MalformedUsageError(key, entry, "a {modality, tokenCount} object")
        if entry.get("modality") == "AUDIO":
            total += _opt(entry, count_key, f"{key}[AUDIO].{count_key}")
    return total


_BEDROCK_NAMES: Final = (
    "inputTokens + cacheReadInputTokens + cacheWriteInputTokens",
    "cacheReadInputTokens",
    "cacheWriteInputTokens",
    "cacheDetails[ttl=1h].inputTokens",
    "outputTokens",
    "reasoning_tokens",
    "audio_input_tokens",
    "audio_output_tokens",
)


def _bedrock(u: dict[Any, Any]) -> Usage:
    """Bedrock Converse: inputTokens EXCLUDES cache reads and writes, which are added back."""
    uncached = check_count("inputTokens", u.get("inputTokens"))
    o = check_count("outputTokens", u.get("outputTokens"))
    cache_read = _opt(u, "cacheReadInputTokens", "cacheReadInputTokens")
    details = u.get("cacheDetails")
    one_hour = detailed = 0
    if details is not None:
        if type(details) is not list:
            raise MalformedUsageError("cacheDetails", details, "a list of {ttl, inputTokens} objects or null")
        for entry in details:
            if type(entry) is not dict:
                raise MalformedUsageError("cacheDetails", entry, "a {ttl, inputTokens} object")
            n = _opt(entry, "inputTokens", "cacheDetails[].inputTokens")
            detailed += n
            if entry.get("ttl") == "1h":
                one_hour += n
    cw = u.get("cacheWriteInputTokens")
    cache_write = detailed if cw is None else check_count("cacheWriteInputTokens", cw)
    if detailed > cache_write:
        # cacheDetails breaks the cache writes down by TTL: it cannot exceed them.
        name = _BEDROCK_NAMES[3] if one_hour > cache_write else "cacheDetails[].inputTokens (sum)"
        value = one_hour if one_hour > cache_write else detailed
        raise MalformedUsageError(name, value, f"at most cacheWriteInputTokens ({cache_write})")
    return checked_usage(
        _BEDROCK_NAMES, uncached + cache_read + cache_write, cache_read, cache_write, one_hour, o, 0, 0, 0
    )


def _cohere(u: dict[Any, Any]) -> Usage | None:
    """Cohere v2: the billed units (``usage.tokens`` counts Cohere's own unbilled preamble too)."""
    if "billed_units" in u:
        units = u["billed_units"]
        if units is None:
            return None
        if type(units) is not dict:
            raise MalformedUsageError("billed_units", units, _OBJECT)
        prefix = "billed_units."
    elif "input_tokens" in u or "output_tokens" in u:
        units, prefix = u, ""  # a bare billed_units block
    else:
        return None
    i = _opt(units, "input_tokens", f"{prefix}input_tokens")
    o = _opt(units, "output_tokens", f"{prefix}output_tokens")
    return checked_usage(
        (
            f"{prefix}input_tokens",
            "cache_read_tokens",
            "cache_write_tokens",
            "cache_write_1h_tokens",
            f"{prefix}output_tokens",
            "reasoning_tokens",
            "audio_input_tokens",
            "audio_output_tokens",
        ),
        i,
        0,
        0,
        0,
        o,
        0,
        0,
        0,
    )


_OLLAMA_NAMES: Final = (
    "prompt_eval_count",
    "cache_read_tokens",
    "cache_write_tokens",
    "cache_write_1h_tokens",
    "eval_count",
    "reasoning_tokens",
    "audio_input_tokens",
    "audio_output_tokens",
)


def _ollama(d: dict[Any, Any]) -> Usage | None:
    """Ollama: counters on the final object; ``prompt_eval_count`` is absent after a KV-cache hit."""
    if d.get("done") is False:
        return None  # a streamed line before the final one
    pe = d.get("prompt_eval_count")
    ev = d.get("eval_count")
    if pe is None and ev is None:
        return None  # e.g. done_reason "load": the model was only loaded
    return checked_usage(_OLLAMA_NAMES, 0 if pe is None else pe, 0, 0, 0, 0 if ev is None else ev, 0, 0, 0)


_PLAIN_NAMES: Final = USAGE_FIELDS


def _plain(u: dict[Any, Any]) -> Usage:
    """A bare ``{input_tokens, output_tokens}`` block: with no cache fields every reading agrees."""
    return checked_usage(_PLAIN_NAMES, u.get("input_tokens", 0), 0, 0, 0, u.get("output_tokens", 0), 0, 0, 0)


_FAMILY_RULES: Final[dict[str, Callable[[Any], Usage | None]]] = {
    _OAI: _oai_auto,
    _RESPONSES: _responses,
    _ANTHROPIC: _anthropic,
    _PLAIN: _plain,
    _GEMINI: _gemini,
    _BEDROCK: _bedrock,
    _COHERE: _cohere,
    _OLLAMA: _ollama,
}
