"""Reading a provider response: usage, served model, response id and API, by the payload's shape.

A payload is located by its shape (`_shape`), and read by the rules of the provider that
served it (`_registry`): the one given, else the one its shape or SDK package reveals. A
caller that knows the API says so (``api=``), and then nothing is sniffed.
"""

from __future__ import annotations as _annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, is_dataclass
from decimal import Decimal
from typing import Any, Final

from meterline._frozen import twin
from meterline._providers._anthropic import messages_usage
from meterline._providers._billing import BILLED_FORMATS, reported_cost_of, service_tier_of
from meterline._providers._cohere import sdk_floats
from meterline._providers._frameworks import langchain_model, langchain_provider
from meterline._providers._gemini import gemini_usage
from meterline._providers._ollama import unknown_fields
from meterline._providers._openai import AUTO, CHAT_APIS, CHAT_ENDPOINTS, chat_usage, provider_of_chat
from meterline._providers._registry import (
    ACCEPTS,
    ALL_FORMATS,
    API_FORMAT,
    API_PROVIDER,
    APIS,
    FORMAT_API,
    FORMAT_PROVIDER,
    FORMAT_RULES,
    PLAIN_API,
    SDK_PROVIDERS,
    api_rules,
    canonical_provider,
    rules_for,
)
from meterline._providers._rules import (
    ANTHROPIC,
    BEDROCK,
    COHERE,
    GEMINI,
    LANGCHAIN,
    NORMALISED,
    OAI,
    OLLAMA,
    PLAIN,
    RESPONSES,
    describe,
    dump,
    parse_json,
    plain_dict,
)
from meterline._providers._server_tools import with_gemini_searches, with_responses_tools
from meterline._providers._shape import locate
from meterline._usage import Usage
from meterline.exceptions import ConfigurationError, UnrecognizedPayloadError

__all__ = ["Extracted", "Normalizer", "extract", "model_from", "normalizer_for", "to_dict", "usage_from"]


@dataclass(frozen=True, slots=True)
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
    service_tier: str | None = None
    """The service tier that served the call, as the body reports it (OpenAI's ``service_tier``,
    Anthropic's ``usage.service_tier``), or ``None``."""
    reported_cost: Decimal | None = None
    """The cost the body states itself, in USD (OpenRouter's ``usage.cost``; for a call on the
    user's own provider key, ``usage.cost_details.upstream_inference_cost``), or ``None``."""


_ExtractedSlots: Final = twin(Extracted)


def _new_extracted(
    provider: str | None,
    model: str | None,
    usage: Usage | None,
    response_id: str | None,
    api: str,
    unknown_fields: tuple[str, ...],
    service_tier: str | None = None,
    reported_cost: Decimal | None = None,
) -> Extracted:
    """Build an `Extracted` from checked values through its mutable twin (see `meterline._frozen`)."""
    extracted: Any = _ExtractedSlots(
        provider, model, usage, response_id, api, unknown_fields, service_tier, reported_cost
    )
    extracted.__class__ = Extracted
    return extracted  # type: ignore[no-any-return]


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
                    return chat_usage(u, AUTO)
                if obj.get("type") == "message" and "input_tokens" in u:
                    return messages_usage(u)
            elif u is None:
                um = obj.get("usageMetadata")
                if type(um) is dict:
                    usage = gemini_usage(um)
                    return usage if usage is None else with_gemini_searches(usage, obj)
        body = obj
    elif type(obj) is Usage:
        return obj
    else:
        body, hint = to_dict(obj)
    family, block, body = locate(body)
    if provider is None and hint is not None and family in ACCEPTS[hint]:
        provider = hint
    canonical = canonical_provider(provider)
    if canonical is not None:
        _check_accepts(canonical, family, body)
    if block is None:
        return None
    usage = rules_for(family, canonical)(block)
    return _with_body_units(family, body, usage) if family in _UNITS_IN_BODY else usage


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
        body, hint = to_dict(obj)
    family, block, body = locate(body)
    canonical = canonical_provider(provider)
    label: str | None
    if api is not None:
        api_family = API_FORMAT.get(api)
        if api_family is None:
            raise ConfigurationError(f"unknown api {api!r}: use one of {', '.join(APIS)}")
        if family in NORMALISED:  # a framework's (or meterline's) usage: its counts are read as they are
            rules = FORMAT_RULES[family]
        elif api_family == family or (family == PLAIN and api_family in {RESPONSES, ANTHROPIC, COHERE}):
            rules = api_rules(api)
        else:
            raise UnrecognizedPayloadError(f"payload does not fit api {api!r}: received {describe(body)}")
        label = canonical if canonical is not None else API_PROVIDER[api]
        api_name = api
    else:
        if canonical is not None:
            _check_accepts(canonical, family, body)
            label = canonical
        elif hint is not None and family in ACCEPTS[hint]:
            label = hint
        elif family == OAI:
            label = provider_of_chat(block, body)
        elif family == LANGCHAIN:
            label = _reported_provider(langchain_provider(body))
        else:
            label = FORMAT_PROVIDER[family]
        rules = rules_for(family, label)
        api_name = _api_name(family, body, label)
    usage = None if block is None else rules(block)
    if family in _UNITS_IN_BODY:
        usage = _with_body_units(family, body, usage)
    unknown: tuple[str, ...] = ()
    if family == OLLAMA and usage is not None:
        unknown = unknown_fields(body, api_name)
    tier = cost = None
    if family in BILLED_FORMATS:
        tier = service_tier_of(family, body, block)
        if type(block) is dict and ("cost" in block or "cost_details" in block):
            cost = reported_cost_of(block)
    return _new_extracted(
        label, _model(family, body), usage, _response_id(family, body), api_name, unknown, tier, cost
    )


def model_from(obj: Any) -> str | None:
    """Return the served model id a response body reports, or ``None`` when it has none.

    Args:
        obj: What `usage_from` accepts.

    Raises:
        UnrecognizedPayloadError: when the payload has no known shape.
    """
    body = obj if type(obj) is dict else to_dict(obj)[0]
    family, _block, body = locate(body)
    return _model(family, body)


# --------------------------------------------------------------------------------------------
# Payloads and metadata


def to_dict(obj: Any) -> tuple[dict[Any, Any], str | None]:
    """Convert JSON text, a mapping, an SDK (pydantic) object or a dataclass to a dict.

    Returns:
        The dict and, for an SDK object whose package fixes the provider, that provider.
    """
    if isinstance(obj, str | bytes | bytearray):
        return parse_json(obj), None
    if isinstance(obj, Mapping):
        return dict(obj), None
    if isinstance(obj, type):
        raise UnrecognizedPayloadError(f"cannot read usage from the class {obj.__qualname__}")
    if callable(getattr(type(obj), "model_dump", None)):
        data = dump(obj)
        module = type(obj).__module__
        root = module.partition(".")[0]
        hint = SDK_PROVIDERS.get(root)
        if hint is None and module.startswith("google.genai"):
            hint = "gcp.gemini"
        if hint == "cohere":
            sdk_floats(data)
        return data, hint
    if is_dataclass(obj) and not isinstance(obj, type):
        # Fields that are SDK objects (the OpenAI Agents SDK's usage details) are dumped too.
        return asdict(obj, dict_factory=_plain_fields), None
    raise UnrecognizedPayloadError(
        f"cannot read usage from {type(obj).__qualname__}: expected a dict, JSON text, or an SDK "
        "response or usage object"
    )


def _plain_fields(fields: list[tuple[str, Any]]) -> dict[str, Any]:
    return {name: plain_dict(value) for name, value in fields}


def _reported_provider(name: str | None) -> str | None:
    """The canonical name of a provider a framework reports, or ``None`` when it is no valid name."""
    try:
        return canonical_provider(name)
    except ConfigurationError:
        return None


def _check_accepts(provider: str, family: str, body: dict[Any, Any]) -> None:
    """Raises `UnrecognizedPayloadError` unless ``provider`` serves the format ``family``."""
    if family not in ACCEPTS.get(provider, ALL_FORMATS) and family not in NORMALISED:
        raise UnrecognizedPayloadError(
            f"payload does not fit provider {provider!r}: received {describe(body)} ({family}-shaped)"
        )


def _api_name(family: str, body: dict[Any, Any], provider: str | None) -> str:
    """The API a body of ``family`` served by ``provider`` came from."""
    if family == OAI:
        obj = body.get("object")
        endpoint = CHAT_ENDPOINTS.get(obj, "chat") if type(obj) is str else "chat"
        return CHAT_APIS.get((provider, endpoint)) or f"openai.{endpoint}"
    if family == OLLAMA:
        if "message" in body:
            return "ollama.chat"
        if type(body.get("response")) is str:
            return "ollama.generate"
        if "embeddings" in body or "embedding" in body:
            return "ollama.embed"
        return "ollama.chat"
    if family == PLAIN:
        return PLAIN_API.get(provider, "unknown")
    if family in NORMALISED:
        return "unknown"
    return FORMAT_API[family]


def _model(family: str, body: dict[Any, Any]) -> str | None:
    """The served model id a body of ``family`` reports, if any."""
    if family == GEMINI:
        model = body.get("modelVersion") or body.get("model_version")
    elif family == LANGCHAIN:
        return langchain_model(body)
    elif family in {BEDROCK, COHERE}:
        return None
    else:
        model = body.get("model")
    return model if type(model) is str and model else None


_UNITS_IN_BODY: Final = frozenset({RESPONSES, GEMINI})
"""Formats whose server-side tool calls are listed in the body, outside the usage block."""


def _with_body_units(family: str, body: dict[Any, Any], usage: Usage | None) -> Usage | None:
    """``usage`` with the server-side tool calls a body of ``family`` lists outside its usage block."""
    if usage is None:
        return None
    if family == RESPONSES:
        return with_responses_tools(usage, body.get("output"))
    if family == GEMINI:
        return with_gemini_searches(usage, body)
    return usage


def _response_id(family: str, body: dict[Any, Any]) -> str | None:
    """The response id a body of ``family`` reports, if any."""
    if family == GEMINI:
        rid = body.get("responseId") or body.get("response_id")
    elif family in {BEDROCK, OLLAMA}:
        return None
    else:
        rid = body.get("id")
    return rid if type(rid) is str and rid else None


# --------------------------------------------------------------------------------------------
# Per-provider normalisers


Normalizer = Callable[[Any], "Extracted"]
"""A function from a payload (dict, JSON text or SDK object) to an `Extracted`."""


def normalizer_for(provider: str | None) -> Normalizer:
    """Return the function that normalises payloads of ``provider``.

    Known providers get their own rules. A custom provider's payloads are normalised by
    their shape: an OpenAI-shaped payload with OpenAI rules, an Ollama-shaped one with
    Ollama rules, and so on; a payload of no known shape raises. ``None`` auto-detects.

    Args:
        provider: A provider name or alias (see `canonical_provider`), or ``None``.

    Returns:
        A callable taking one payload and returning an `Extracted`.

    Raises:
        ConfigurationError: when ``provider`` is not a valid provider name.
    """
    canonical = canonical_provider(provider)

    def normalize(obj: Any) -> Extracted:
        return extract(obj, canonical)

    normalize.__name__ = f"normalize_{(canonical or 'auto').replace('.', '_').replace('-', '_')}"
    normalize.__qualname__ = normalize.__name__
    return normalize
