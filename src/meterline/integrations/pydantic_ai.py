"""pydantic-ai: ``MeteredModel``, a wrapper that meters and budgets any pydantic-ai model.

One line::

    from meterline.integrations.pydantic_ai import metered

    agent = Agent(metered("openai:gpt-4o"))           # or metered(AnthropicModel(...)), any Model

Every request the model makes (each step of a run: tool calls, retries, output validation) is
one event, with the usage the model class read from the provider (pydantic-ai's
``RequestUsage``: cache reads and writes, by lifetime, and reasoning included), the served
model, the provider that answered and its response id, in the meterline scopes active where
the run was started. Streamed requests (``run_stream``, ``iter``) are recorded when their
stream closes. Before each request the budgets are reserved: `meterline.BudgetExceeded` is
raised out of ``agent.run`` before anything is sent. A failed request is recorded with its
status. Nothing else is ever raised.

Because it wraps the model, it works for every model class pydantic-ai has (OpenAI, Anthropic,
Gemini, Groq, Mistral, Bedrock, Cohere, Hugging Face, OpenAI-compatible gateways, fallbacks…).
"""

from __future__ import annotations as _annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, Final

from meterline._dimensions import check_dimensions
from meterline._extras import check_version, require
from meterline.integrations._model_call import ModelCall, answered, begin, check_meter

_wrapper = require("pydantic-ai", "pydantic_ai.models.wrapper")
MIN_VERSION: Final = (2, 60, 0)
"""The oldest pydantic-ai-slim release supported (the ``pydantic-ai`` extra's floor, tested)."""
check_version("pydantic-ai-slim", "pydantic-ai", MIN_VERSION)

if TYPE_CHECKING:
    from pydantic_ai.models import Model
    from pydantic_ai.models.wrapper import WrapperModel

    from meterline._meter import Meter
else:
    WrapperModel = _wrapper.WrapperModel

__all__ = ["MIN_VERSION", "MeteredModel", "metered"]

_PROVIDERS: Final = {"google-vertex": "gcp.vertex_ai", "bedrock": "aws.bedrock"}
"""pydantic-ai ``system`` names that are not meterline provider aliases."""


class MeteredModel(WrapperModel):
    """Any pydantic-ai model, metered: one event per request, budgets reserved before it is sent.

    Args:
        wrapped: A pydantic-ai `Model` or a model name (``"openai:gpt-4o"``).
        meter: Where to record; ``None`` records to the process-wide default meter of the moment.
        tags: Dimensions added to every event of this model.

    Raises:
        ConfigurationError: ``meter`` is not a `Meter`, or a tag is invalid.
    """

    def __init__(
        self, wrapped: Model | str, meter: Meter | None = None, *, tags: Mapping[str, str | int] | None = None
    ) -> None:
        check_meter(meter)
        checked = None if not tags else dict(check_dimensions(tags, "tag"))
        super().__init__(wrapped)
        self._meter = meter
        self._tags = checked

    async def request(self, messages: Any, model_settings: Any, model_request_parameters: Any) -> Any:
        """The wrapped model's request, reserved before and recorded after."""
        call = self._begin(messages, model_settings)
        try:
            response = await self.wrapped.request(messages, model_settings, model_request_parameters)
        except BaseException as exc:
            if call is not None:
                call.fail(exc, sent=answered(exc))
            raise
        if call is not None:
            self._finish(call, response.usage, response)
        return response

    @asynccontextmanager
    async def request_stream(
        self,
        messages: Any,
        model_settings: Any,
        model_request_parameters: Any,
        run_context: Any = None,
    ) -> AsyncIterator[Any]:
        """The wrapped model's stream, reserved before and recorded when the stream closes."""
        call = self._begin(messages, model_settings)
        stream = None
        try:
            async with self.wrapped.request_stream(
                messages, model_settings, model_request_parameters, run_context
            ) as stream:
                yield stream
        except BaseException as exc:
            if call is not None:
                if stream is None:
                    call.fail(exc, sent=answered(exc))
                else:
                    call.fail(exc)
            raise
        if call is not None:
            self._finish(call, _usage_of(stream), stream)

    def _begin(self, messages: Any, model_settings: Any) -> ModelCall | None:
        settings = model_settings if isinstance(model_settings, Mapping) else {}
        return begin(
            self._meter,
            model=self.wrapped.model_name,
            provider=_provider(self.wrapped.system),
            messages=messages,
            max_output_tokens=settings.get("max_tokens"),
            tags=self._tags,
        )

    def _finish(self, call: ModelCall, usage: Any, response: Any) -> None:
        provider = getattr(response, "provider_name", None)
        if isinstance(provider, str) and provider:
            call.provider = _provider(provider)
        served = getattr(response, "model_name", None)
        response_id = getattr(response, "provider_response_id", None)
        call.finish(
            usage,
            served=served if isinstance(served, str) and served else None,
            response_id=response_id if isinstance(response_id, str) and response_id else None,
        )


def metered(
    model: Model | str, meter: Meter | None = None, *, tags: Mapping[str, str | int] | None = None
) -> MeteredModel:
    """``MeteredModel(model, meter, tags=tags)``: pass it to ``Agent`` wherever a model goes."""
    return MeteredModel(model, meter, tags=tags)


def _provider(system: object) -> str | None:
    if not isinstance(system, str) or not system:
        return None
    return _PROVIDERS.get(system, system)


def _usage_of(stream: Any) -> Any:
    """A streamed response's usage: a property since pydantic-ai 2, a method before."""
    if isinstance(getattr(type(stream), "usage", None), property):
        return stream.usage
    return stream.usage()
