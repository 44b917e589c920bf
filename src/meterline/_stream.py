"""Usage of a streamed response: each provider's framing rule, applied chunk by chunk.

Streams never carry usage the same way twice: OpenAI chat sends it on one extra last chunk
(only with ``include_usage``), Anthropic seeds it in ``message_start`` and overwrites it field
by field in ``message_delta``, Gemini repeats a cumulative snapshot on every chunk, the OpenAI
Responses API puts it on the terminal event. Summing chunks double counts in every case: each
rule here *replaces* the usage seen so far, never adds to it.
"""

from __future__ import annotations as _annotations

import json
from collections.abc import Callable, Iterable
from typing import Any, Final

from meterline._normalize import (
    _ACCEPTS,
    _OAI,
    _OAI_API,
    _anthropic,
    _bedrock,
    _cohere,
    _describe,
    _dump,
    _gemini,
    _oai_provider,
    _ollama,
    _ollama_unknown,
    _responses,
    _rules,
    _to_dict,
)
from meterline._providers import canonical_provider
from meterline._usage import Usage
from meterline.exceptions import MalformedUsageError, UnrecognizedPayloadError

__all__ = ["StreamAccumulator", "usage_from_stream"]

_Handler = Callable[["StreamAccumulator", dict[Any, Any]], None]
_Reducer = Callable[["StreamAccumulator", Any], "dict[Any, Any] | None"]

_OBJECT: Final = "an object or null"

_ANTHROPIC_EVENTS: Final = frozenset(
    {"message_start", "message_delta", "message_stop", "content_block_start", "content_block_delta",
     "content_block_stop", "ping"}
)  # fmt: skip
_COHERE_EVENTS: Final = frozenset(
    {"message-start", "message-end", "content-start", "content-delta", "content-end", "tool-plan-delta",
     "tool-call-start", "tool-call-delta", "tool-call-end", "citation-start", "citation-end", "debug"}
)  # fmt: skip
_RESPONSE_LIFECYCLE: Final = frozenset(
    {"response.created", "response.queued", "response.in_progress", "response.completed",
     "response.incomplete", "response.failed"}
)  # fmt: skip
"""Responses events that carry the whole ``response`` object (the others are deltas)."""
_COHERE_USAGE_EVENTS: Final = frozenset({"message-start", "message-end"})
_BEDROCK_EVENTS: Final = frozenset(
    {"messageStart", "contentBlockStart", "contentBlockDelta", "contentBlockStop", "messageStop", "metadata"}
)
_CHAT_OBJECTS: Final = frozenset({"chat.completion.chunk", "chat.completion", "text_completion"})


class StreamAccumulator:
    """Accumulate the usage of one streamed response, one chunk at a time.

    Feed every chunk to `add` in order: SDK event objects, parsed dicts, or the JSON text of one
    SSE ``data:`` payload or NDJSON line (``[DONE]``, blank lines, ``event:`` lines and SSE
    comments are skipped). The provider's framing is detected from the first recognisable chunk
    unless ``provider`` is given.

    Rules per framing (see ``usage_semantics.md`` §3):

    - OpenAI chat, Mistral, DeepSeek, xAI: the last non-null ``usage`` wins; Groq also
      ``x_groq.usage``.
    - OpenAI Responses: ``response.usage`` of the terminal event (``response.completed``,
      ``.incomplete`` or ``.failed``); the null usage of earlier events is ignored.
    - Anthropic: ``message_start.message.usage``, then every non-null field of each
      ``message_delta.usage`` overwrites it (the counts are cumulative: never add).
    - Gemini: the last ``usageMetadata`` snapshot (cumulative).
    - Bedrock ConverseStream: the ``metadata`` event. Cohere v2: ``message-end``'s
      ``delta.usage``. Ollama: the final ``done: true`` line.

    A stream that never delivered usage (no ``include_usage``, cut short) has ``usage is None``.
    """

    __slots__ = (
        "_anthropic_state",
        "_api",
        "_chunks",
        "_given",
        "_handler",
        "_model",
        "_provider",
        "_reducer",
        "_response_id",
        "_rules",
        "_unknown",
        "_unwrap",
        "_usage",
    )

    def __init__(self, provider: str | None = None) -> None:
        """Start an empty stream.

        Args:
            provider: The provider name or alias, or ``None`` to detect it from the chunks.

        Raises:
            ConfigurationError: when ``provider`` is not a valid provider name.
        """
        canonical = canonical_provider(provider)
        self._provider: str | None = canonical
        self._given = canonical is not None
        self._usage: Usage | None = None
        self._model: str | None = None
        self._response_id: str | None = None
        self._api: str | None = None
        self._chunks = 0
        self._unknown: tuple[str, ...] = ()
        self._anthropic_state: dict[Any, Any] | None = None
        self._unwrap = False
        self._rules = _rules(_OAI, canonical)
        self._handler: _Handler = _detect
        self._reducer: _Reducer = _reduce_any

    @property
    def usage(self) -> Usage | None:
        """The usage so far (final once the stream has ended), or ``None`` when none arrived."""
        return self._usage

    @property
    def model(self) -> str | None:
        """The served model id the stream reported, or ``None`` (Bedrock and Cohere send none)."""
        return self._model

    @property
    def response_id(self) -> str | None:
        """The provider's response id, when the stream carried one."""
        return self._response_id

    @property
    def provider(self) -> str | None:
        """The canonical provider: the one given, else the one detected (``None`` before)."""
        return self._provider

    @property
    def api(self) -> str | None:
        """The API the stream belongs to (e.g. ``"openai.chat"``), once detected."""
        return self._api

    @property
    def chunks(self) -> int:
        """How many chunks were added (skipped ``[DONE]``, blank and comment lines not counted)."""
        return self._chunks

    @property
    def unknown_fields(self) -> tuple[str, ...]:
        """Canonical fields reported as 0 because the provider omitted them (Ollama KV-cache hits)."""
        return self._unknown

    def add(self, chunk: Any) -> None:
        """Take one chunk of the stream into account.

        Args:
            chunk: An SDK stream event, a parsed dict, or the JSON text (``str``/``bytes``) of one
                SSE data payload or NDJSON line.

        Raises:
            MalformedUsageError: when the chunk's usage has a bad count (the state is unchanged).
            UnrecognizedPayloadError: when the chunk is not JSON, or when no chunk so far has
                been recognisable and this one is not either.
        """
        if type(chunk) is not dict:
            if isinstance(chunk, str | bytes | bytearray):
                self._add_text(chunk)
                return
            if isinstance(chunk, type) or not callable(getattr(type(chunk), "model_dump", None)):
                chunk = _to_dict(chunk)[0]
            else:
                if self._unwrap or self._handler is _detect:
                    # mistralai wraps each chunk in an event's .data. Checked on the first chunk
                    # only: a missing attribute costs microseconds on a pydantic object.
                    inner = getattr(chunk, "data", None)
                    self._unwrap = inner is not None and callable(getattr(type(inner), "model_dump", None))
                    if self._unwrap:
                        chunk = inner
                chunk = self._reducer(self, chunk)
                if chunk is None:
                    self._chunks += 1
                    return
        self._chunks += 1
        self._handler(self, chunk)

    def _add_text(self, text: str | bytes | bytearray) -> None:
        if not isinstance(text, str):
            try:
                text = bytes(text).decode("utf-8")
            except UnicodeDecodeError:
                raise UnrecognizedPayloadError(f"chunk of {len(text)} bytes is not UTF-8") from None
        s = text.strip()
        if "\n" in s:
            # A whole SSE frame ("event: ...\ndata: {...}") or several NDJSON lines.
            for line in s.splitlines():
                self._add_text(line)
            return
        if s.startswith("data:"):
            s = s[5:].strip()
        if not s or s == "[DONE]" or s[0] == ":" or s.startswith(("event:", "id:", "retry:")):
            return
        try:
            data = json.loads(s)
        except (ValueError, RecursionError):
            raise UnrecognizedPayloadError(f"chunk of length {len(s)} is not valid JSON") from None
        if type(data) is not dict:
            raise UnrecognizedPayloadError(f"chunk is a JSON {type(data).__name__}, not an object")
        self._chunks += 1
        self._handler(self, data)

    def __repr__(self) -> str:
        return (
            f"StreamAccumulator(provider={self._provider!r}, model={self._model!r}, "
            f"chunks={self._chunks}, usage={self._usage!r})"
        )


def usage_from_stream(chunks: Iterable[Any], provider: str | None = None) -> Usage | None:
    """Return the usage of a whole stream, consuming ``chunks``.

    Args:
        chunks: The stream's chunks in order (what `StreamAccumulator.add` accepts). A single
            ``str``/``bytes`` is read as a whole SSE or NDJSON body, line by line.
        provider: The provider name or alias, or ``None`` to detect it.

    Returns:
        The usage, or ``None`` when the stream never delivered any.

    Raises:
        MalformedUsageError: when a chunk's usage has a bad count.
        UnrecognizedPayloadError: when the chunks are not a known stream.
        ConfigurationError: when ``provider`` is not a valid provider name.
    """
    acc = StreamAccumulator(provider)
    if isinstance(chunks, str | bytes | bytearray):
        acc.add(chunks)
        return acc.usage
    if isinstance(chunks, dict):
        raise UnrecognizedPayloadError("usage_from_stream() takes an iterable of chunks, not one dict")
    try:
        iterator = iter(chunks)
    except TypeError:
        raise UnrecognizedPayloadError(
            f"usage_from_stream() takes an iterable of chunks, not {type(chunks).__qualname__}"
        ) from None
    add = acc.add
    for chunk in iterator:
        add(chunk)
    return acc.usage


# --------------------------------------------------------------------------------------------
# Framing detection


def _detect(acc: StreamAccumulator, d: dict[Any, Any]) -> None:
    """Handler used until the framing is known: detect it from this chunk, then handle it."""
    framing = _framing_of(d)
    allowed = _PROVIDER_FRAMINGS.get(acc._provider) if acc._given else None
    if framing is None and allowed is not None and (len(allowed) == 1 or acc._provider == "aws.bedrock"):
        # The provider's main framing: e.g. a Bedrock event-stream payload ({"role": ...}) that
        # arrives without botocore's wrapper key.
        framing = allowed[0]
    if framing is None or (allowed is not None and framing not in allowed):
        where = f" for provider {acc._provider!r}" if acc._given else ""
        raise UnrecognizedPayloadError(f"unrecognised stream chunk{where}: {_describe(d)}")
    _set_framing(acc, framing, d)
    acc._handler(acc, d)


def _framing_of(d: dict[Any, Any]) -> str | None:
    t = d.get("type")
    if type(t) is str:
        if t.startswith("response."):
            return "responses"
        if t in _ANTHROPIC_EVENTS:
            return "anthropic"
        if t in _COHERE_EVENTS:
            return "cohere"
    obj = d.get("object")
    if (type(obj) is str and obj in _CHAT_OBJECTS) or "choices" in d:
        return "chat"
    u = d.get("usage")
    if type(u) is dict and "prompt_tokens" in u:
        return "chat"
    if "usageMetadata" in d or "usage_metadata" in d or "candidates" in d or "modelVersion" in d:
        return "gemini"
    if "done" in d and ("model" in d or "created_at" in d):
        return "ollama"
    for key in d:
        if key in _BEDROCK_EVENTS:
            return "bedrock"
    if "contentBlockIndex" in d or "stopReason" in d or (type(u) is dict and "inputTokens" in u):
        return "bedrock"  # an event-stream payload without its wrapper key
    if "x_groq" in d:
        return "chat"
    return None


def _set_framing(acc: StreamAccumulator, framing: str, first: dict[Any, Any] | None) -> None:
    acc._handler, acc._reducer = _FRAMINGS[framing]
    provider = acc._provider
    if not acc._given:
        provider = _FRAMING_PROVIDER[framing]
        if framing == "chat" and first is not None and "x_groq" in first:
            provider = "groq"
        acc._provider = provider
    if framing == "chat":
        acc._api = _OAI_API.get((provider, "chat"), "openai.chat")
    elif framing == "ollama":
        generate = first is not None and type(first.get("response")) is str
        acc._api = "ollama.generate" if generate else "ollama.chat"
    else:
        acc._api = _FRAMING_API[framing]


# --------------------------------------------------------------------------------------------
# Handlers: one parsed chunk of a known framing


def _capture(acc: StreamAccumulator, model: object, rid: object) -> None:
    if acc._model is None and type(model) is str and model:
        acc._model = model
    if acc._response_id is None and type(rid) is str and rid:
        acc._response_id = rid


def _chat(acc: StreamAccumulator, d: dict[Any, Any]) -> None:
    if acc._model is None:
        _capture(acc, d.get("model"), d.get("id"))
    u = d.get("usage")
    if u is None:
        xg = d.get("x_groq")
        if xg is None:
            return
        if type(xg) is not dict:
            raise MalformedUsageError("x_groq", xg, _OBJECT)
        u = xg.get("usage")
        if u is None:
            return
        name = "x_groq.usage"
    else:
        name = "usage"
    if type(u) is not dict:
        raise MalformedUsageError(name, u, _OBJECT)
    acc._usage = acc._rules(u)
    if not acc._given:
        acc._provider = _oai_provider(u, d)
        acc._api = _OAI_API.get((acc._provider, "chat"), "openai.chat")


def _responses_event(acc: StreamAccumulator, d: dict[Any, Any]) -> None:
    r = d.get("response")
    if r is None:
        return  # a delta event
    if type(r) is not dict:
        raise MalformedUsageError("response", r, "an object")
    _capture(acc, r.get("model"), r.get("id"))
    u = r.get("usage")
    if u is None:
        return  # response.created / response.in_progress carry usage: null
    if type(u) is not dict:
        raise MalformedUsageError("response.usage", u, _OBJECT)
    acc._usage = _responses(u)


def _anthropic_event(acc: StreamAccumulator, d: dict[Any, Any]) -> None:
    t = d.get("type")
    if t == "message_start":
        m = d.get("message")
        if type(m) is not dict:
            raise MalformedUsageError("message", m, "an object")
        _capture(acc, m.get("model"), m.get("id"))
        u = m.get("usage")
        if u is None:
            return
        if type(u) is not dict:
            raise MalformedUsageError("message.usage", u, _OBJECT)
        state = dict(u)
    elif t == "message_delta":
        u = d.get("usage")
        if u is None:
            return
        if type(u) is not dict:
            raise MalformedUsageError("usage", u, _OBJECT)
        # Cumulative counts: overwrite every non-null field, never add (tensorzero/tensorzero#5481).
        state = dict(acc._anthropic_state or ())
        for key, value in u.items():
            if value is not None:
                state[key] = value
    else:
        return
    acc._usage = _anthropic(state)
    acc._anthropic_state = state


def _gemini_chunk(acc: StreamAccumulator, d: dict[Any, Any]) -> None:
    _capture(
        acc, d.get("modelVersion") or d.get("model_version"), d.get("responseId") or d.get("response_id")
    )
    um = d.get("usageMetadata")
    if um is None:
        um = d.get("usage_metadata")
        if um is None:
            return
    if type(um) is not dict:
        raise MalformedUsageError("usageMetadata", um, _OBJECT)
    usage = _gemini(um)  # a cumulative snapshot: the last one wins
    if usage is not None:
        acc._usage = usage


def _bedrock_event(acc: StreamAccumulator, d: dict[Any, Any]) -> None:
    md = d.get("metadata")
    if md is None:
        if "usage" not in d:
            return
        md = d  # the metadata payload without its wrapper key
    elif type(md) is not dict:
        raise MalformedUsageError("metadata", md, "an object")
    u = md.get("usage")
    if u is None:
        return
    if type(u) is not dict:
        raise MalformedUsageError("metadata.usage", u, _OBJECT)
    acc._usage = _bedrock(u)


def _cohere_event(acc: StreamAccumulator, d: dict[Any, Any]) -> None:
    t = d.get("type")
    if t == "message-start":
        _capture(acc, None, d.get("id"))
        return
    if t != "message-end":
        return
    delta = d.get("delta")
    if type(delta) is not dict:
        raise MalformedUsageError("delta", delta, "an object")
    u = delta.get("usage")
    if u is None:
        return
    if type(u) is not dict:
        raise MalformedUsageError("delta.usage", u, _OBJECT)
    usage = _cohere(u)
    if usage is not None:
        acc._usage = usage


def _ollama_line(acc: StreamAccumulator, d: dict[Any, Any]) -> None:
    if acc._model is None:
        _capture(acc, d.get("model"), None)
    if d.get("done") is not True:
        return
    usage = _ollama(d)
    if usage is not None:
        acc._usage = usage
        acc._unknown = _ollama_unknown(d, acc._api or "ollama.chat")


# --------------------------------------------------------------------------------------------
# Reducers: an SDK event object -> the dict a handler needs, or None when it carries nothing.
# Dumping a pydantic event costs tens of microseconds; most chunks carry no usage, so each
# reducer reads one or two attributes first and dumps only what matters.


def _reduce_any(acc: StreamAccumulator, obj: Any) -> dict[Any, Any]:
    return _to_dict(obj)[0]


def _reduce_chat(acc: StreamAccumulator, obj: Any) -> dict[Any, Any] | None:
    u = getattr(obj, "usage", None)
    if u is None and acc._provider == "groq":
        xg = getattr(obj, "x_groq", None)
        if xg is not None:
            xu = xg.get("usage") if type(xg) is dict else getattr(xg, "usage", None)
            if xu is not None:
                return {"x_groq": {"usage": _plain_dict(xu)}, "model": getattr(obj, "model", None)}
    if u is None:
        if acc._model is None:
            _capture(acc, getattr(obj, "model", None), getattr(obj, "id", None))
        return None
    return {"usage": _plain_dict(u), "model": getattr(obj, "model", None), "id": getattr(obj, "id", None)}


def _reduce_responses(acc: StreamAccumulator, obj: Any) -> dict[Any, Any] | None:
    t = getattr(obj, "type", None)
    if type(t) is not str or t not in _RESPONSE_LIFECYCLE:
        return None  # a delta event: reading a missing .response would cost microseconds
    r = getattr(obj, "response", None)
    if r is None:
        return None
    u = getattr(r, "usage", None)
    return {
        "type": getattr(obj, "type", None),
        "response": {
            "usage": None if u is None else _plain_dict(u),
            "model": getattr(r, "model", None),
            "id": getattr(r, "id", None),
        },
    }


def _reduce_anthropic(acc: StreamAccumulator, obj: Any) -> dict[Any, Any] | None:
    t = getattr(obj, "type", None)
    if t == "message_start":
        m = getattr(obj, "message", None)
        u = getattr(m, "usage", None)
        return {
            "type": t,
            "message": {
                "usage": None if u is None else _plain_dict(u),
                "model": getattr(m, "model", None),
                "id": getattr(m, "id", None),
            },
        }
    if t == "message_delta":
        u = getattr(obj, "usage", None)
        return {"type": t, "usage": None if u is None else _plain_dict(u)}
    return None


def _reduce_gemini(acc: StreamAccumulator, obj: Any) -> dict[Any, Any] | None:
    um = getattr(obj, "usage_metadata", None)
    if um is None:
        if acc._model is None:
            _capture(acc, getattr(obj, "model_version", None), getattr(obj, "response_id", None))
        return None
    return {
        "usageMetadata": _plain_dict(um),
        "modelVersion": getattr(obj, "model_version", None),
        "responseId": getattr(obj, "response_id", None),
    }


def _reduce_cohere(acc: StreamAccumulator, obj: Any) -> dict[Any, Any] | None:
    t = getattr(obj, "type", None)
    if type(t) is str and t in _COHERE_USAGE_EVENTS:
        return _to_dict(obj)[0]
    return None


def _reduce_ollama(acc: StreamAccumulator, obj: Any) -> dict[Any, Any] | None:
    if getattr(obj, "done", None) is True:
        return _to_dict(obj)[0]
    if acc._model is None:
        _capture(acc, getattr(obj, "model", None), None)
    return None


def _plain_dict(value: Any) -> Any:
    """A usage sub-object as a dict (SDK objects are dumped; dicts and odd values pass through)."""
    if type(value) is dict or not callable(getattr(type(value), "model_dump", None)):
        return value
    return _dump(value)


_FRAMINGS: Final[dict[str, tuple[_Handler, _Reducer]]] = {
    "chat": (_chat, _reduce_chat),
    "responses": (_responses_event, _reduce_responses),
    "anthropic": (_anthropic_event, _reduce_anthropic),
    "gemini": (_gemini_chunk, _reduce_gemini),
    "bedrock": (_bedrock_event, _reduce_any),
    "cohere": (_cohere_event, _reduce_cohere),
    "ollama": (_ollama_line, _reduce_ollama),
}

_FRAMING_PROVIDER: Final[dict[str, str]] = {
    "chat": "openai",
    "responses": "openai",
    "anthropic": "anthropic",
    "gemini": "gcp.gemini",
    "bedrock": "aws.bedrock",
    "cohere": "cohere",
    "ollama": "ollama",
}

_FRAMING_API: Final[dict[str, str]] = {
    "responses": "openai.responses",
    "anthropic": "anthropic.messages",
    "gemini": "gemini.generate_content",
    "bedrock": "bedrock.converse",
    "cohere": "cohere.chat",
}

_PROVIDER_FRAMINGS: Final[dict[str | None, tuple[str, ...]]] = {
    "openai": ("chat", "responses"),
    "azure.ai.openai": ("chat", "responses"),
    "azure.ai.inference": ("chat", "responses"),
    "anthropic": ("anthropic",),
    "gcp.gemini": ("gemini",),
    "gcp.gen_ai": ("gemini",),
    "gcp.vertex_ai": ("gemini", "anthropic", "chat"),
    "aws.bedrock": ("bedrock", "anthropic", "chat"),
    "mistral_ai": ("chat",),
    "cohere": ("cohere",),
    "deepseek": ("chat",),
    "groq": ("chat", "responses"),
    "x_ai": ("chat", "responses"),
    "ollama": ("ollama", "chat"),
}
"""Framings each known provider streams; custom providers may stream any of them."""

assert set(_PROVIDER_FRAMINGS) == set(_ACCEPTS)  # kept in step with _normalize
