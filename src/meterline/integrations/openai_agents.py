"""The OpenAI Agents SDK: every model call of a run metered, Chat Completions and Responses, streamed or not.

One line, on the run::

    from meterline.integrations.openai_agents import MeteredModelProvider

    result = await Runner.run(agent, "Hi", run_config=RunConfig(model_provider=MeteredModelProvider()))

or on a model object an agent holds (``Agent(model=MeteredModel(OpenAIChatCompletionsModel(...)))``),
which the run's model provider does not see.

Each model call of a run (every turn, tool call, handoff and guardrail of any agent) is one
event, in the meterline scopes active where the run was started. A call's usage is the
provider's own: a streamed call's from the final ``response.completed`` event's usage block
(the Responses API's, or the one the SDK builds from Chat Completions' usage), a plain call's
from the SDK's ``Usage`` (cached input and reasoning tokens included). The budgets are
reserved before each call: `meterline.BudgetExceeded` is raised out of ``Runner.run`` before
the request is sent. A failed call is recorded with its status; nothing else is ever raised.
"""

from __future__ import annotations as _annotations

from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any, Final

from meterline._dimensions import check_dimensions
from meterline._extras import check_version, require
from meterline.integrations._model_call import ModelCall, answered, begin, check_meter

_interface = require("openai-agents", "agents.models.interface")
MIN_VERSION: Final = (0, 3, 0)
"""The oldest openai-agents release supported (the ``openai-agents`` extra's floor, tested)."""
check_version("openai-agents", "openai-agents", MIN_VERSION)

if TYPE_CHECKING:
    from agents.models.interface import Model, ModelProvider

    from meterline._meter import Meter
else:
    Model = _interface.Model
    ModelProvider = _interface.ModelProvider

__all__ = ["MIN_VERSION", "MeteredModel", "MeteredModelProvider"]

_COMPLETED = "response.completed"


class MeteredModel(Model):
    """An Agents SDK model, metered: one event per call, budgets reserved before it is sent.

    Args:
        wrapped: The SDK's model (``OpenAIResponsesModel``, ``OpenAIChatCompletionsModel``, …).
        meter: Where to record; ``None`` records to the process-wide default meter of the moment.
        model_name: The model's name for pricing (default: the wrapped model's ``model``).
        provider: Who serves and bills the calls (default ``"openai"``).
        tags: Dimensions added to every event of this model.

    Raises:
        ConfigurationError: ``meter`` is not a `Meter`, or a tag is invalid.
    """

    def __init__(
        self,
        wrapped: Model,
        meter: Meter | None = None,
        *,
        model_name: str | None = None,
        provider: str = "openai",
        tags: Mapping[str, str | int] | None = None,
    ) -> None:
        check_meter(meter)
        self.wrapped = wrapped
        self._meter = meter
        name = model_name if model_name is not None else getattr(wrapped, "model", None)
        self._model = name if isinstance(name, str) and name else None
        self._provider = provider
        self._tags = None if not tags else dict(check_dimensions(tags, "tag"))

    async def get_response(self, *args: Any, **kwargs: Any) -> Any:
        """The wrapped model's call, reserved before and recorded after."""
        call = self._begin(args, kwargs)
        try:
            response = await self.wrapped.get_response(*args, **kwargs)
        except BaseException as exc:
            if call is not None:
                call.fail(exc, sent=answered(exc))
            raise
        if call is not None:
            response_id = getattr(response, "response_id", None)
            call.finish(response.usage, response_id=response_id if isinstance(response_id, str) else None)
        return response

    def stream_response(self, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        """The wrapped model's stream, reserved before its first event and recorded when it ends."""
        return self._stream(args, kwargs)

    async def _stream(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> AsyncIterator[Any]:
        call = self._begin(args, kwargs)
        completed = None
        started = False
        try:
            async for event in self.wrapped.stream_response(*args, **kwargs):
                started = True
                if getattr(event, "type", None) == _COMPLETED:
                    completed = getattr(event, "response", None)
                yield event
        except BaseException as exc:
            if call is not None:
                call.fail(exc, sent=started or answered(exc))
            raise
        if call is None:
            return
        if completed is None:
            call.finish(None)  # the stream ended without its final usage: unmeasured, never free
            return
        served = getattr(completed, "model", None)
        response_id = getattr(completed, "id", None)
        call.finish(
            completed,
            api="openai.responses",
            served=served if isinstance(served, str) and served else None,
            response_id=response_id if isinstance(response_id, str) else None,
        )

    def _begin(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> ModelCall | None:
        settings = kwargs.get("model_settings", args[2] if len(args) > 2 else None)
        max_tokens = getattr(settings, "max_tokens", None)
        instructions = kwargs.get("system_instructions", args[0] if args else None)
        items = kwargs.get("input", args[1] if len(args) > 1 else None)
        return begin(
            self._meter,
            model=self._model,
            provider=self._provider,
            messages=[instructions, items],
            max_output_tokens=max_tokens,
            tags=self._tags,
        )

    async def close(self) -> None:
        """Close the wrapped model."""
        close = getattr(self.wrapped, "close", None)
        if close is not None:
            await close()


class MeteredModelProvider(ModelProvider):
    """A model provider whose every model is a `MeteredModel`; pass it as ``RunConfig(model_provider=)``.

    Args:
        provider: The provider to wrap (default: the SDK's ``OpenAIProvider()``).
        meter: Where to record; ``None`` records to the process-wide default meter of the moment.
        billed_by: Who serves and bills the models' calls (default ``"openai"``).
        tags: Dimensions added to every event.

    Raises:
        ConfigurationError: ``meter`` is not a `Meter`, or a tag is invalid.
    """

    def __init__(
        self,
        provider: ModelProvider | None = None,
        meter: Meter | None = None,
        *,
        billed_by: str = "openai",
        tags: Mapping[str, str | int] | None = None,
    ) -> None:
        check_meter(meter)
        if provider is None:
            provider = require("openai-agents", "agents.models.openai_provider").OpenAIProvider()
        self.wrapped: ModelProvider = provider
        self._meter = meter
        self._billed_by = billed_by
        self._tags = None if not tags else dict(check_dimensions(tags, "tag"))

    def get_model(self, model_name: str | None) -> Model:
        """The wrapped provider's model for ``model_name`` (``None``: the SDK's default), metered."""
        model = self.wrapped.get_model(model_name)
        name = model_name or getattr(model, "model", None) or _default_model()
        return MeteredModel(model, self._meter, model_name=name, provider=self._billed_by, tags=self._tags)

    async def aclose(self) -> None:
        """Close the wrapped provider."""
        close = getattr(self.wrapped, "aclose", None)
        if close is not None:
            await close()


def _default_model() -> str | None:
    """The SDK's default model name (``agents.models.default_models``, since openai-agents 0.3)."""
    try:
        from agents.models.default_models import get_default_model  # noqa: PLC0415
    except ImportError:
        return None
    return get_default_model()
