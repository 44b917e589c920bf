"""Providers: who served a call, and how to read the usage their APIs report.

- `_registry`: provider names and aliases (OpenTelemetry ``gen_ai.provider.name``), their
  price-data ids, and which APIs and usage formats each serves.
- One module per API family, holding both its usage rules and its stream framing:
  `_openai` (Chat Completions and every OpenAI-compatible API, Responses), `_anthropic`,
  `_gemini`, `_bedrock`, `_cohere`, `_ollama`; each depends only on `_rules`.
- `_server_tools`: server-side tool calls a body lists outside its usage block; `_billing`:
  the tier that served a call and the cost its response states.
- `_shape`: the shape detection, in one place. `_extract`: `extract` and `usage_from`.
  `_stream`: `StreamAccumulator` and `usage_from_stream`.
"""

from meterline._providers._billing import MAX_TIER_LENGTH
from meterline._providers._extract import (
    Extracted,
    Normalizer,
    extract,
    model_from,
    normalizer_for,
    usage_from,
)
from meterline._providers._registry import (
    APIS,
    KNOWN_PROVIDERS,
    PRICE_DATA_IDS,
    PROVIDERS,
    SELF_HOSTED,
    canonical_provider,
    provider_as_stored,
    provider_of_price_data,
)
from meterline._providers._stream import StreamAccumulator, usage_from_stream

__all__ = [
    "APIS",
    "KNOWN_PROVIDERS",
    "MAX_TIER_LENGTH",
    "PRICE_DATA_IDS",
    "PROVIDERS",
    "SELF_HOSTED",
    "Extracted",
    "Normalizer",
    "StreamAccumulator",
    "canonical_provider",
    "extract",
    "model_from",
    "normalizer_for",
    "provider_as_stored",
    "provider_of_price_data",
    "usage_from",
    "usage_from_stream",
]
