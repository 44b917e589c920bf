"""Agent frameworks, metered: one module per framework, imported only when used.

- `meterline.integrations.langchain`: a callback handler (sync and async) for any chat model
  or chain, and ``metered()`` that also asks streams for their usage.
- `meterline.integrations.litellm`: a ``CustomLogger`` for the SDK and the proxy (whose
  pre-call hook enforces budgets), and ``completion``/``acompletion`` that refuse a call over
  budget before LiteLLM sends it.
- `meterline.integrations.pydantic_ai`: ``MeteredModel``, a wrapper around any pydantic-ai model.
- `meterline.integrations.openai_agents`: ``MeteredModelProvider`` and ``MeteredModel`` for
  the OpenAI Agents SDK, Chat Completions and Responses, streamed or not.

Each reads the provider's own usage block as the framework hands it on (cache reads and
writes and reasoning included), records one event per model call in the scopes that were
active when the framework started it, and reserves against the meter's budgets before the
request is sent: a refusal (`meterline.BudgetExceeded`) reaches the caller through the
framework. Anything else that goes wrong in meterline is logged and counted, never raised.

Use an integration *or* ``meterline.instrument()`` on the framework's SDK client, not both: the
two would each record the call.
"""

__all__: list[str] = []
