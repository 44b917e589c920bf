"""LangChain: a callback handler that meters every chat model (and LLM) call, with budgets.

One line per model, per chain or per call::

    from meterline.integrations.langchain import MeterlineCallbackHandler, metered

    llm = metered(ChatOpenAI(model="gpt-4o"))                  # per model (streams report usage)
    chain.invoke(x, config={"callbacks": [MeterlineCallbackHandler()]})  # per chain or call

Each model call is one event, recorded when LangChain ends it (``on_llm_end``, streams
included) in the meterline scopes active where the call started, whatever thread or task
LangChain ends it on. Usage is the provider's own block when LangChain hands it on (OpenAI's
``token_usage``, Anthropic's ``usage``), else the message's ``usage_metadata`` (cache reads and
writes, reasoning and audio included). A budget is reserved in ``on_chat_model_start``, before
the request is sent: `meterline.BudgetExceeded` reaches the caller through LangChain. A failed
call (``on_llm_error``) is recorded with its error status. Nothing else is ever raised.

Handlers share one table of runs in flight: a call seen by two handlers (one on the model,
one on the chain) is recorded once.
"""

from __future__ import annotations as _annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final, TypeVar
from uuid import UUID

from meterline._dimensions import check_dimensions
from meterline._extras import check_version, require
from meterline.exceptions import ConfigurationError
from meterline.integrations._model_call import InFlight, ModelCall, begin, check_meter

_core = require("langchain", "langchain_core.callbacks")
MIN_VERSION: Final = (0, 3, 30)
"""The oldest langchain-core release supported (the ``langchain`` extra's floor, tested)."""
check_version("langchain-core", "langchain", MIN_VERSION)

if TYPE_CHECKING:
    from langchain_core.callbacks import AsyncCallbackHandler, BaseCallbackHandler

    from meterline._meter import Meter
else:
    AsyncCallbackHandler = _core.AsyncCallbackHandler
    BaseCallbackHandler = _core.BaseCallbackHandler

__all__ = ["MIN_VERSION", "AsyncMeterlineCallbackHandler", "MeterlineCallbackHandler", "metered"]

logger = logging.getLogger("meterline")

M = TypeVar("M")

_PROVIDERS: Final = {"google_vertexai": "gcp.vertex_ai", "google_anthropic_vertex": "gcp.vertex_ai"}
"""LangChain ``ls_provider`` names that are not meterline provider aliases."""

_RUNS: Final = InFlight()
"""Model calls in flight, by LangChain run id, shared by every handler (one event per call)."""

_warned: set[str] = set()
_warned_lock = threading.Lock()


class _Metering:
    """What the sync and async handlers share: start, end and error of one run."""

    def __init__(self, meter: Meter | None, tags: Mapping[str, str | int] | None) -> None:
        check_meter(meter)
        self.meter = meter
        self.tags = None if not tags else check_dimensions(tags, "tag")

    def start(self, run_id: UUID, inputs: object, metadata: Mapping[str, Any] | None, kwargs: Any) -> None:
        """Reserve for the call ``run_id`` (raises only a budget's refusal)."""
        if run_id in _RUNS:
            return  # another handler has it
        model, provider, max_tokens = _request(metadata, kwargs.get("invocation_params"))
        call = begin(
            self.meter,
            model=model,
            provider=provider,
            messages=inputs,
            max_output_tokens=max_tokens,
            tags=self.tags,
        )
        if call is not None and not _RUNS.add(run_id, call):
            call.drop()  # another handler has the run

    def end(self, run_id: UUID, response: Any) -> None:
        """Record the call ``run_id`` from LangChain's ``LLMResult`` (never raises)."""
        call = _RUNS.pop(run_id)
        if call is None:
            return
        try:
            payload, api, served, response_id = _reading(response, call.provider)
        except Exception:  # noqa: BLE001 - an odd result is recorded unmeasured, never raised
            call.meter.guard.failed("the LangChain integration (reading a result)", str(call.model))
            payload = api = served = response_id = None
        if payload is None:
            _warn_once(call)
        call.finish(payload, api=api, served=served, response_id=response_id)

    def error(self, run_id: UUID, error: BaseException) -> None:
        """Record the failed call ``run_id`` (never raises)."""
        call = _RUNS.pop(run_id)
        if call is not None:
            call.fail(error)


class MeterlineCallbackHandler(BaseCallbackHandler):
    """Meters every chat model and LLM call it sees (sync, async, streamed, batched).

    Pass it to a model (``ChatOpenAI(callbacks=[handler])``), a chain or one call
    (``config={"callbacks": [handler]}``); one handler can serve every model of an application.
    It runs inline (in the caller's thread or task), so the call's event lands in the
    meterline scopes active there.

    Args:
        meter: Where to record; ``None`` records to the process-wide default meter of the
            moment (`meterline.get_meter`).
        tags: Dimensions added to every event this handler records.

    Raises:
        ConfigurationError: ``meter`` is not a `Meter`, or a tag is invalid.
    """

    raise_error = True  # so a budget's refusal reaches the caller; nothing else is raised
    run_inline = True  # in an async run too: the caller's scopes, before the request

    def __init__(self, meter: Meter | None = None, *, tags: Mapping[str, str | int] | None = None) -> None:
        super().__init__()
        self._metering = _Metering(meter, tags)

    def on_chat_model_start(
        self,
        serialized: dict[str, Any],
        messages: list[list[Any]],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        """Reserve for a chat model call; raises `meterline.BudgetExceeded` over a budget."""
        self._metering.start(run_id, messages, metadata, kwargs)

    def on_llm_start(
        self,
        serialized: dict[str, Any],
        prompts: list[str],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        """Reserve for a (non-chat) LLM call; raises `meterline.BudgetExceeded` over a budget."""
        self._metering.start(run_id, prompts, metadata, kwargs)

    def on_llm_end(
        self, response: Any, *, run_id: UUID, parent_run_id: UUID | None = None, **kwargs: Any
    ) -> None:
        """Record the call's event."""
        self._metering.end(run_id, response)

    def on_llm_error(
        self, error: BaseException, *, run_id: UUID, parent_run_id: UUID | None = None, **kwargs: Any
    ) -> None:
        """Record the failed call's event."""
        self._metering.error(run_id, error)


class AsyncMeterlineCallbackHandler(AsyncCallbackHandler):
    """`MeterlineCallbackHandler` as an ``AsyncCallbackHandler``, for async-only callback lists.

    Same arguments and behaviour; its methods are coroutines LangChain awaits in the caller's task.
    """

    raise_error = True
    run_inline = True

    def __init__(self, meter: Meter | None = None, *, tags: Mapping[str, str | int] | None = None) -> None:
        super().__init__()
        self._metering = _Metering(meter, tags)

    async def on_chat_model_start(
        self,
        serialized: dict[str, Any],
        messages: list[list[Any]],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        """Reserve for a chat model call; raises `meterline.BudgetExceeded` over a budget."""
        self._metering.start(run_id, messages, metadata, kwargs)

    async def on_llm_start(
        self,
        serialized: dict[str, Any],
        prompts: list[str],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        """Reserve for a (non-chat) LLM call; raises `meterline.BudgetExceeded` over a budget."""
        self._metering.start(run_id, prompts, metadata, kwargs)

    async def on_llm_end(
        self, response: Any, *, run_id: UUID, parent_run_id: UUID | None = None, **kwargs: Any
    ) -> None:
        """Record the call's event."""
        self._metering.end(run_id, response)

    async def on_llm_error(
        self, error: BaseException, *, run_id: UUID, parent_run_id: UUID | None = None, **kwargs: Any
    ) -> None:
        """Record the failed call's event."""
        self._metering.error(run_id, error)


def metered(model: M, meter: Meter | None = None, *, tags: Mapping[str, str | int] | None = None) -> M:
    """A copy of a LangChain chat model that meters its calls and asks its streams for usage.

    The copy has a `MeterlineCallbackHandler` added to its callbacks and, where the model has
    the option (``ChatOpenAI`` and its kin), ``stream_usage=True``: a stream without usage
    would be recorded unmeasured.

    Args:
        model: A LangChain chat model or LLM (a pydantic model with ``callbacks``).
        meter: Where to record; ``None``: the default meter of the moment.
        tags: Dimensions added to every event of this model.

    Returns:
        The metered copy, of the same class (``bind_tools``, ``with_structured_output`` work on it).

    Raises:
        ConfigurationError: ``model`` is not a LangChain model, ``meter`` is not a `Meter`, or a
            tag is invalid.
    """
    fields = getattr(type(model), "model_fields", None)
    if not isinstance(fields, Mapping) or "callbacks" not in fields:
        raise ConfigurationError(f"model={model!r}: expected a LangChain chat model or LLM")
    handler = MeterlineCallbackHandler(meter, tags=tags)
    existing = getattr(model, "callbacks", None)
    if existing is not None and not isinstance(existing, Sequence):
        raise ConfigurationError(
            f"model={model!r} has a callback manager: add a MeterlineCallbackHandler to it instead"
        )
    update: dict[str, Any] = {"callbacks": [*(existing or ()), handler]}
    if "stream_usage" in fields:
        update["stream_usage"] = True
    copy: M = model.model_copy(update=update)  # type: ignore[attr-defined]
    return copy


def _request(metadata: Mapping[str, Any] | None, params: object) -> tuple[str | None, str | None, int | None]:
    """``(model, provider, max output tokens)`` of a call, from LangChain's run metadata."""
    meta = metadata or {}
    invocation = params if isinstance(params, Mapping) else {}
    model = meta.get("ls_model_name") or invocation.get("model") or invocation.get("model_name")
    provider = meta.get("ls_provider")
    if isinstance(provider, str):
        provider = _PROVIDERS.get(provider, provider)
    max_tokens = meta.get("ls_max_tokens") or invocation.get("max_tokens")
    return (
        model if isinstance(model, str) and model else None,
        provider if isinstance(provider, str) and provider else None,
        max_tokens if type(max_tokens) is int else None,
    )


def _reading(response: Any, provider: str | None) -> tuple[object, str | None, str | None, str | None]:
    """``(payload, api, served model, response id)`` of an ``LLMResult`` for one run.

    The provider's own usage block when LangChain kept it (a non-streamed OpenAI or Anthropic
    call), else the message (read by its ``usage_metadata``), else nothing (unmeasured).
    """
    generations = getattr(response, "generations", None) or [[]]
    first = generations[0][0] if generations and generations[0] else None
    message = getattr(first, "message", None)
    meta = getattr(message, "response_metadata", None)
    meta = meta if isinstance(meta, Mapping) else {}
    output = getattr(response, "llm_output", None)
    output = output if isinstance(output, Mapping) else {}
    served = meta.get("model_name") or meta.get("model") or output.get("model_name")
    served = served if isinstance(served, str) and served else None
    response_id = meta.get("id") or output.get("id") or _provider_id(getattr(message, "id", None))
    response_id = response_id if isinstance(response_id, str) and response_id else None
    raw = output.get("token_usage")
    if isinstance(raw, Mapping) and "prompt_tokens" in raw:
        return dict(raw), "openai.chat" if message is not None else "openai.completions", served, response_id
    raw = meta.get("usage")
    if provider == "anthropic" and isinstance(raw, Mapping) and "input_tokens" in raw:
        return dict(raw), "anthropic.messages", served, response_id
    if message is not None and getattr(message, "usage_metadata", None) is not None:
        return message, None, served, response_id
    return None, None, served, response_id


def _provider_id(message_id: object) -> str | None:
    """A message id that is the provider's response id (LangChain names its own ``run-…``/``lc_run-…``)."""
    if not isinstance(message_id, str) or message_id.startswith(("run-", "lc_run-", "lc_")):
        return None
    return message_id


def _warn_once(call: ModelCall) -> None:
    key = f"{call.provider}/{call.model}"
    with _warned_lock:
        if key in _warned:
            return
        _warned.add(key)
    logger.warning(
        "meterline: a LangChain call of %s reported no usage and is recorded unmeasured; "
        "for a stream, create the model with stream_usage=True (or wrap it with metered())",
        key,
    )
