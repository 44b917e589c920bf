"""LiteLLM: a ``CustomLogger`` for the SDK and the proxy, and calls that refuse over budget.

SDK, one line::

    litellm.callbacks.append(MeterlineLogger())

Every ``completion``/``acompletion`` (and embedding, text completion, Responses) call is then
one event, once per ``litellm_call_id`` however many of LiteLLM's handlers fire (sync and
async, streams when they end), with the usage LiteLLM read from the provider (cache reads,
cache writes by lifetime and reasoning included), billed to the provider that served it. The
event lands in the meterline scopes active where the call was made, though LiteLLM logs on its
own threads and tasks. A failed call is recorded with its status. A LiteLLM cache hit is a
`Meter.record_cache_hit`, not a billed call.

LiteLLM's SDK swallows whatever a logger raises, so a logger cannot refuse a call. Where
budgets must hold, call `completion` / `acompletion` of this module instead of LiteLLM's (the
same arguments): they reserve first and raise `meterline.BudgetExceeded` before LiteLLM sends
anything, and register a `MeterlineLogger` if none is.

Proxy, in ``config.yaml`` (a module of yours that creates the logger)::

    litellm_settings:
      callbacks: my_meterline.logger        # my_meterline.py: logger = MeterlineLogger()

The proxy's pre-call hook then enforces the meter's budgets (an HTTP 429 over budget), and
every event carries the proxy's ``org``, ``team``, ``user``, ``end_user`` and ``api_key`` (the
key's alias, else its hash; never the key) as dimensions.
"""

from __future__ import annotations as _annotations

import collections
import functools
import sys
import threading
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

from meterline._default import get_meter
from meterline._dimensions import check_dimensions
from meterline._extras import check_version, require
from meterline.exceptions import BudgetExceeded
from meterline.integrations._model_call import InFlight, ModelCall, answered, begin, check_meter

litellm = require("litellm", "litellm")
_custom_logger = require("litellm", "litellm.integrations.custom_logger")
MIN_VERSION: Final = (1, 80, 0)
"""The oldest litellm release supported (the ``litellm`` extra's floor, tested)."""
check_version("litellm", "litellm", MIN_VERSION)

if TYPE_CHECKING:
    from litellm.integrations.custom_logger import CustomLogger

    from meterline._meter import Meter
else:
    CustomLogger = _custom_logger.CustomLogger

__all__ = ["MIN_VERSION", "PROXY_DIMENSIONS", "MeterlineLogger", "acompletion", "completion"]

PROXY_DIMENSIONS: Final = {
    "org": ("org_id", "user_api_key_org_id"),
    "team": ("team_id", "user_api_key_team_id"),
    "user": ("user_id", "user_api_key_user_id"),
    "end_user": ("end_user_id", "user_api_key_end_user_id"),
}
"""meterline dimension -> (``UserAPIKeyAuth`` field, the proxy's request metadata key)."""

_APIS: Final = {
    "embedding": "openai.embeddings",
    "aembedding": "openai.embeddings",
    "text_completion": "openai.completions",
    "atext_completion": "openai.completions",
    "responses": "openai.responses",
    "aresponses": "openai.responses",
}
"""LiteLLM call type -> the OpenAI-shaped API its response takes (else ``openai.chat``)."""

_CALLS: Final = InFlight()
"""Calls started (reserved, their context captured) and not yet recorded, by ``litellm_call_id``."""

_DONE_KEPT: Final = 4096


class _Done:
    """The ids of the last calls recorded: a late second handler of the same call records nothing."""

    def __init__(self) -> None:
        self._ids: collections.OrderedDict[str, None] = collections.OrderedDict()
        self._lock = threading.Lock()

    def claim(self, call_id: str) -> bool:
        """Whether ``call_id`` is new (and mark it recorded)."""
        with self._lock:
            if call_id in self._ids:
                return False
            self._ids[call_id] = None
            if len(self._ids) > _DONE_KEPT:
                self._ids.popitem(last=False)
            return True


_done = _Done()


class MeterlineLogger(CustomLogger):
    """Records every LiteLLM call once; in the proxy, also enforces budgets before each call.

    Args:
        meter: Where to record; ``None`` records to the process-wide default meter of the moment.
        tags: Dimensions added to every event this logger records.

    Raises:
        ConfigurationError: ``meter`` is not a `Meter`, or a tag is invalid.
    """

    def __init__(self, meter: Meter | None = None, *, tags: Mapping[str, str | int] | None = None) -> None:
        check_meter(meter)
        super().__init__()
        self.meter = meter
        self.tags = None if not tags else dict(check_dimensions(tags, "tag"))

    # -- the SDK's hooks ------------------------------------------------------------------------

    def log_pre_api_call(self, model: Any, messages: Any, kwargs: Any) -> None:
        """Capture the caller's scopes for the call (LiteLLM runs this where the call is made)."""
        try:
            call_id = _call_id(kwargs)
            if call_id is None or call_id in _CALLS:
                return
            model, provider = _model(kwargs), _provider(kwargs)
            try:
                call = begin(self.meter, model=model, provider=provider, tags=self.tags)
            except BudgetExceeded:
                # LiteLLM swallows this hook's errors, so the call goes out (only this module's
                # completion() refuses): keep its scopes, and record and charge it when it ends.
                call = begin(self.meter, model=model, provider=provider, tags=self.tags, reserve=False)
            if call is not None and not _CALLS.add(call_id, call):
                call.drop()  # the call was started already
        except Exception:  # noqa: BLE001
            self._failed("a call's start")

    def log_success_event(self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any) -> None:
        """Record a call that succeeded (a stream, once it ended)."""
        self._success(kwargs, response_obj)

    async def async_log_success_event(
        self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any
    ) -> None:
        """Record a call that succeeded (a stream, once it ended)."""
        self._success(kwargs, response_obj)

    def log_failure_event(self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any) -> None:
        """Record a call that failed."""
        self._failure(kwargs)

    async def async_log_failure_event(
        self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any
    ) -> None:
        """Record a call that failed."""
        self._failure(kwargs)

    # -- the proxy's hook -----------------------------------------------------------------------

    async def async_pre_call_hook(
        self, user_api_key_dict: Any, cache: Any, data: dict[str, Any], call_type: Any
    ) -> Any:
        """Reserve the request against the budgets, in the dimensions of its key, team, user and end user.

        Raises:
            fastapi.HTTPException: 429 when a budget would be exceeded (the proxy answers with it).
        """
        try:
            dimensions = _key_dimensions(user_api_key_dict)
            call_id = data.get("litellm_call_id")
            if not isinstance(call_id, str) or not call_id:
                call_id = data["litellm_call_id"] = str(uuid.uuid4())
            model = data.get("model") if isinstance(data.get("model"), str) else None
            tags = {**(self.tags or {}), **dimensions}
            call = begin(
                self.meter,
                model=model,
                provider=_provider_of_model(model),
                messages=data.get("messages") or data.get("input"),
                max_output_tokens=data.get("max_tokens") or data.get("max_completion_tokens"),
                tags=tags or None,
            )
        except BudgetExceeded as exc:
            raise _http_429(exc) from exc
        except Exception:  # noqa: BLE001
            self._failed("the proxy's pre-call hook")
            return data
        if call is not None and not _CALLS.add(call_id, call):
            call.drop()  # the call was started already
        return data

    # -- shared -------------------------------------------------------------------------------

    def _success(self, kwargs: Any, response: Any) -> None:
        try:
            call_id = _call_id(kwargs)
            call = self._call_of(call_id, kwargs)
            if call is None:
                return
            stream = kwargs.get("complete_streaming_response") if isinstance(kwargs, Mapping) else None
            payload = stream if stream is not None else response
            if isinstance(kwargs, Mapping) and kwargs.get("cache_hit") is True:
                call.drop()  # no provider call: a cache hit, recorded as one
                _record_cache_hit(call, payload)
                return
            call.finish(
                payload, api=_APIS.get(str(kwargs.get("call_type")), "openai.chat"), served=_served(payload)
            )
        except Exception:  # noqa: BLE001
            self._failed("a call's success")

    def _failure(self, kwargs: Any) -> None:
        try:
            call = self._call_of(_call_id(kwargs), kwargs)
            if call is None:
                return
            exc = kwargs.get("exception") if isinstance(kwargs, Mapping) else None
            call.fail(exc if isinstance(exc, BaseException) else RuntimeError("LiteLLM call failed"))
        except Exception:  # noqa: BLE001
            self._failed("a call's failure")

    def _call_of(self, call_id: str | None, kwargs: Any) -> ModelCall | None:
        """The call ``call_id`` started, or a new one (no reservation); ``None`` once recorded."""
        if call_id is not None and not _done.claim(call_id):
            return None
        call = _CALLS.pop(call_id) if call_id is not None else None
        if call is None:
            tags = {**(self.tags or {}), **_metadata_dimensions(kwargs)}
            # A call no hook saw start (a cache hit, a path without pre-call logging): it already
            # happened, so it is recorded without a reservation, whatever the budgets say.
            call = begin(
                self.meter, model=_model(kwargs), provider=_provider(kwargs), tags=tags or None, reserve=False
            )
        return call

    def _failed(self, what: str) -> None:
        (self.meter or get_meter()).guard.failed(f"the LiteLLM integration ({what})")


def completion(*args: Any, meter: Meter | None = None, **kwargs: Any) -> Any:
    """``litellm.completion``, refused before anything is sent when a budget would be exceeded.

    Same arguments and result as LiteLLM's. Reserves the call's worst case (its messages and
    ``max_tokens``) in the caller's scopes; the `MeterlineLogger` (registered if none is)
    settles it when LiteLLM logs the call.

    Raises:
        BudgetExceeded: a budget would be exceeded (LiteLLM was not called).
        BudgetStoreError: the budget store is down and the budget fails closed.
    """
    call_id = _reserve(args, kwargs, meter)
    try:
        return litellm.completion(*args, **kwargs)
    except BaseException as exc:
        _abandon(call_id, exc)
        raise


async def acompletion(*args: Any, meter: Meter | None = None, **kwargs: Any) -> Any:
    """``litellm.acompletion``, refused before anything is sent when a budget would be exceeded.

    See `completion`.
    """
    call_id = _reserve(args, kwargs, meter)
    try:
        return await litellm.acompletion(*args, **kwargs)
    except BaseException as exc:
        _abandon(call_id, exc)
        raise


def _reserve(args: tuple[Any, ...], kwargs: dict[str, Any], meter: Meter | None) -> str:
    check_meter(meter)
    if not any(isinstance(callback, MeterlineLogger) for callback in _registered()):
        litellm.callbacks.append(MeterlineLogger(meter))
    model = kwargs.get("model", args[0] if args else None)
    model = model if isinstance(model, str) else None
    messages = kwargs.get("messages", args[1] if len(args) > 1 else None)
    call_id = kwargs.get("litellm_call_id")
    if not isinstance(call_id, str) or not call_id:
        call_id = kwargs["litellm_call_id"] = str(uuid.uuid4())
    call = begin(
        meter,
        model=_bare_model(model),
        provider=kwargs.get("custom_llm_provider") or _provider_of_model(model),
        messages=messages,
        max_output_tokens=kwargs.get("max_tokens") or kwargs.get("max_completion_tokens"),
    )
    if call is not None and not _CALLS.add(call_id, call):
        call.drop()  # the call was started already
    return call_id


def _registered() -> list[Any]:
    """Every callback LiteLLM holds (its manager's lists, else ``litellm.callbacks``)."""
    manager = getattr(litellm, "logging_callback_manager", None)
    every = getattr(manager, "get_all_callbacks", None)
    return list(every()) if callable(every) else list(litellm.callbacks)


def _abandon(call_id: str, exc: BaseException) -> None:
    """The call raised: record it (the provider answered) or release it, unless a handler did."""
    call = _CALLS.pop(call_id)
    if call is not None and _done.claim(call_id):
        call.fail(exc, sent=answered(exc))


def _call_id(kwargs: Any) -> str | None:
    if not isinstance(kwargs, Mapping):
        return None
    call_id = kwargs.get("litellm_call_id")
    if not isinstance(call_id, str):
        params = kwargs.get("litellm_params")
        call_id = params.get("litellm_call_id") if isinstance(params, Mapping) else None
    return call_id if isinstance(call_id, str) and call_id else None


def _model(kwargs: Any) -> str | None:
    model = kwargs.get("model") if isinstance(kwargs, Mapping) else None
    return _bare_model(model if isinstance(model, str) else None)


def _bare_model(model: str | None) -> str | None:
    """``anthropic/claude-…`` -> ``claude-…`` (LiteLLM's provider prefix is the provider, not the model)."""
    return None if model is None else _split(model)[0]


def _provider(kwargs: Any) -> str | None:
    if not isinstance(kwargs, Mapping):
        return None
    params = kwargs.get("litellm_params")
    provider = kwargs.get("custom_llm_provider") or (
        params.get("custom_llm_provider") if isinstance(params, Mapping) else None
    )
    if isinstance(provider, str) and provider:
        return provider
    model = kwargs.get("model")
    return _provider_of_model(model if isinstance(model, str) else None)


def _provider_of_model(model: str | None) -> str | None:
    return None if model is None else _split(model)[1]


@functools.lru_cache(maxsize=1024)
def _split(model: str) -> tuple[str, str | None]:
    """``(model without LiteLLM's provider prefix, provider)``, as LiteLLM resolves the name.

    Cached: LiteLLM's resolution is a pure function of the name, and costs some 40 µs a call.
    A name LiteLLM does not know (a proxy's model group) keeps its name and has no provider.
    """
    try:
        bare, provider, _key, _base = litellm.get_llm_provider(model)
    except Exception:  # noqa: BLE001 - an unknown name is not an error here
        return model, None
    return (
        bare if isinstance(bare, str) and bare else model,
        provider if isinstance(provider, str) and provider else None,
    )


def _served(payload: Any) -> str | None:
    model = getattr(payload, "model", None)
    if model is None and isinstance(payload, Mapping):
        model = payload.get("model")
    return _bare_model(model) if isinstance(model, str) and model else None


def _key_dimensions(auth: Any) -> dict[str, str]:
    """The proxy's key, team, user and end user of a request, as meterline dimensions."""
    found = {name: getattr(auth, field, None) for name, (field, _key) in PROXY_DIMENSIONS.items()}
    found["api_key"] = getattr(auth, "key_alias", None) or getattr(auth, "token", None)
    return {name: value for name, value in found.items() if isinstance(value, str) and value}


def _metadata_dimensions(kwargs: Any) -> dict[str, str]:
    """The same dimensions from a proxy call's logged metadata (a call the hook did not see)."""
    params = kwargs.get("litellm_params") if isinstance(kwargs, Mapping) else None
    metadata = params.get("metadata") if isinstance(params, Mapping) else None
    if not isinstance(metadata, Mapping):
        return {}
    found = {name: metadata.get(key) for name, (_field, key) in PROXY_DIMENSIONS.items()}
    found["api_key"] = metadata.get("user_api_key_alias") or metadata.get("user_api_key_hash")
    return {name: value for name, value in found.items() if isinstance(value, str) and value}


def _record_cache_hit(call: ModelCall, payload: Any) -> None:
    usage = getattr(payload, "usage", None)
    total = getattr(usage, "total_tokens", None)
    saved = total if type(total) is int and total >= 0 else 0
    call.context.run(call.meter.record_cache_hit, tokens_saved=saved, tags=call.tags)


def _http_429(exc: BudgetExceeded) -> Exception:
    """The proxy's ``HTTPException(429)`` (the proxy runs on FastAPI, already imported), else ``exc``."""
    http_exception = getattr(sys.modules.get("fastapi"), "HTTPException", None)
    if not isinstance(http_exception, type):
        return exc
    refusal: Exception = http_exception(status_code=429, detail=str(exc))
    return refusal
