"""Usage of a streamed response: each provider's framing rule, applied chunk by chunk.

Streams never carry usage the same way twice: OpenAI chat sends it on one extra last chunk
(only with ``include_usage``), Anthropic seeds it in ``message_start`` and overwrites it field
by field in ``message_delta``, Gemini repeats a cumulative snapshot on every chunk, the OpenAI
Responses API puts it on the terminal event. Summing chunks double counts in every case: each
provider module's handler *replaces* the usage seen so far, never adds to it. This module
detects the framing (`_shape.framing_of`) and feeds the chunks to its handler.
"""

from __future__ import annotations as _annotations

import base64
import json
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from meterline._providers._extract import to_dict
from meterline._providers._openai import CHAT_APIS
from meterline._providers._registry import (
    FRAMING_API,
    FRAMING_PROVIDER,
    FRAMINGS,
    PROVIDER_FRAMINGS,
    Handler,
    Reducer,
    canonical_provider,
    rules_for,
)
from meterline._providers._rules import OAI, StreamState, describe
from meterline._providers._shape import framing_of
from meterline._usage import Usage
from meterline.exceptions import UnrecognizedPayloadError

__all__ = ["StreamAccumulator", "usage_from_stream"]


def _reduce_any(state: StreamState, obj: Any) -> dict[Any, Any]:
    """Any SDK object as a dict: the reducer until the framing is known."""
    return to_dict(obj)[0]


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

    __slots__ = ("_chunks", "_handler", "_reducer", "_state", "_unwrap")

    def __init__(self, provider: str | None = None) -> None:
        """Start an empty stream.

        Args:
            provider: The provider name or alias, or ``None`` to detect it from the chunks.

        Raises:
            ConfigurationError: when ``provider`` is not a valid provider name.
        """
        canonical = canonical_provider(provider)
        self._state = StreamState(canonical, rules_for(OAI, canonical))
        self._chunks = 0
        self._unwrap = False
        self._handler: Handler | None = None
        """The framing's handler, once detected."""
        self._reducer: Reducer = _reduce_any

    @property
    def usage(self) -> Usage | None:
        """The usage so far (final once the stream has ended), or ``None`` when none arrived."""
        return self._state.usage

    @property
    def complete(self) -> bool:
        """Whether ``usage`` is the stream's final count.

        ``False`` before any usage arrived, and while the last count is one a stream reports
        before its end (Anthropic's ``message_start``, whose ``output_tokens`` is a placeholder;
        a Gemini snapshot before the finish reason). A stream that ended so was cut short: its
        ``usage`` is a lower bound (record it with ``complete=False``).
        """
        state = self._state
        return state.usage is not None and not state.provisional

    @property
    def model(self) -> str | None:
        """The served model id the stream reported, or ``None`` (Bedrock and Cohere send none)."""
        return self._state.model

    @property
    def response_id(self) -> str | None:
        """The provider's response id, when the stream carried one."""
        return self._state.response_id

    @property
    def provider(self) -> str | None:
        """The canonical provider: the one given, else the one detected (``None`` before)."""
        return self._state.provider

    @property
    def api(self) -> str | None:
        """The API the stream belongs to (e.g. ``"openai.chat"``), once detected."""
        return self._state.api

    @property
    def service_tier(self) -> str | None:
        """The service tier the stream reported (OpenAI chunks' ``service_tier``), if any."""
        return self._state.service_tier

    @property
    def reported_cost(self) -> Decimal | None:
        """The cost the stream stated (OpenRouter's last chunk, ``usage.cost``), in USD, if any."""
        return self._state.reported_cost

    @property
    def chunks(self) -> int:
        """How many chunks were added (skipped ``[DONE]``, blank and comment lines not counted)."""
        return self._chunks

    @property
    def unknown_fields(self) -> tuple[str, ...]:
        """Canonical fields reported as 0 because the provider omitted them (Ollama KV-cache hits)."""
        return self._state.unknown

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
                chunk = to_dict(chunk)[0]
            else:
                if self._unwrap or self._handler is None:
                    # mistralai wraps each chunk in an event's .data. Checked on the first chunk
                    # only: a missing attribute costs microseconds on a pydantic object.
                    inner = getattr(chunk, "data", None)
                    self._unwrap = inner is not None and callable(getattr(type(inner), "model_dump", None))
                    if self._unwrap:
                        chunk = inner
                chunk = self._reducer(self._state, chunk)
                if chunk is None:
                    self._chunks += 1
                    return
        self._chunks += 1
        self._handle(chunk)

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
        self._handle(data)

    # -- framing ------------------------------------------------------------------------

    def _handle(self, d: dict[Any, Any]) -> None:
        chunk = d.get("chunk")
        if type(chunk) is dict and len(d) == 1 and "bytes" in chunk:
            d = _invoke_event(chunk["bytes"])  # Bedrock InvokeModelWithResponseStream
        handler = self._handler
        if handler is None:
            self._detect(d)
        else:
            handler(self._state, d)

    def _detect(self, d: dict[Any, Any]) -> None:
        """Detect the framing from the first recognisable chunk, then handle it."""
        state = self._state
        framing = framing_of(d)
        allowed = PROVIDER_FRAMINGS.get(state.provider) if state.given else None
        if framing is None and allowed is not None and (len(allowed) == 1 or state.provider == "aws.bedrock"):
            # The provider's main framing: e.g. a Bedrock event-stream payload ({"role": ...}) that
            # arrives without botocore's wrapper key.
            framing = allowed[0]
        if framing is None or (allowed is not None and framing not in allowed):
            where = f" for provider {state.provider!r}" if state.given else ""
            raise UnrecognizedPayloadError(f"unrecognised stream chunk{where}: {describe(d)}")
        handler, self._reducer = FRAMINGS[framing]
        self._handler = handler
        if not state.given:
            state.provider = FRAMING_PROVIDER[framing]
            if framing == "chat" and "x_groq" in d:
                state.provider = "groq"
        if framing == "chat":
            state.api = CHAT_APIS.get((state.provider, "chat"), "openai.chat")
        elif framing == "ollama":
            state.api = "ollama.generate" if type(d.get("response")) is str else "ollama.chat"
        else:
            state.api = FRAMING_API[framing]
        handler(state, d)

    def __repr__(self) -> str:
        return (
            f"StreamAccumulator(provider={self._state.provider!r}, model={self._state.model!r}, "
            f"chunks={self._chunks}, usage={self._state.usage!r})"
        )


def _invoke_event(payload: object) -> dict[Any, Any]:
    """The event a Bedrock InvokeModel stream chunk carries: its model vendor's own (Anthropic's).

    botocore gives the payload as bytes; on the wire (and in a JSON dump) it is base64 text.
    """
    try:
        raw = (
            payload
            if isinstance(payload, bytes | bytearray)
            else base64.b64decode(str(payload), validate=True)
        )
        event = json.loads(raw)
    except (ValueError, RecursionError):
        raise UnrecognizedPayloadError("a Bedrock stream chunk's bytes are not base64 JSON") from None
    if type(event) is not dict:
        raise UnrecognizedPayloadError(f"a Bedrock stream chunk holds a JSON {type(event).__name__}")
    return event


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
