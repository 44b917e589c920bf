"""The fixture corpus through the real SDK clients: the installed SDK keeps every usage field.

An SDK parses the provider's body into its own types before meterline sees it, and an old
SDK drops the fields its types lack (google-genai before 1.8 drops ``thoughtsTokenCount``).
Each OpenAI, Anthropic and Gemini case of tests/fixtures is served by the local server, called
through the SDK's client, and must be recorded with the usage the case expects. Run against
the SDKs' floors (``make test-sdkmin``), this is what shows that a floor meters honestly.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import anthropic
import openai
import pytest
from google import genai

import meterline
from tests.fixture_cases import valid
from tests.instrument.conftest import Recorded
from tests.instrument.server import FakeAPI, Reply, event_sse, gemini_sse, openai_sse

MESSAGES: Any = [{"role": "user", "content": "Hi"}]
NO_AFC: Any = {"automatic_function_calling": {"disable": True}}
MODELS = {"openai": "gpt-4o-mini", "anthropic": "claude-opus-4-7", "gcp.gemini": "gemini-2.5-flash"}
"""The model each call asks for (the case's body names the model that served it)."""
RESPONSES_SINCE = "openai 1.66"
"""The release that brought the Responses API (``client.responses``)."""

Call = Callable[[FakeAPI, Recorded, dict[str, Any]], None]


def _openai(api: FakeAPI, rec: Recorded) -> openai.OpenAI:
    return meterline.instrument(
        openai.OpenAI(api_key="k", base_url=f"{api.url}/v1", max_retries=0), rec.meter
    )


def _openai_chat(api: FakeAPI, rec: Recorded, case: dict[str, Any]) -> None:
    with _openai(api, rec) as client:
        if case["kind"] == "stream":
            api.script(Reply(events=openai_sse(case["chunks"])))
            for _chunk in client.chat.completions.create(
                model=MODELS[case["provider"]], messages=MESSAGES, stream=True
            ):
                pass
        else:
            api.script(Reply(body=case["payload"]))
            client.chat.completions.create(model=MODELS[case["provider"]], messages=MESSAGES)


def _openai_responses(api: FakeAPI, rec: Recorded, case: dict[str, Any]) -> None:
    with _openai(api, rec) as client:
        if not hasattr(client, "responses"):
            pytest.skip(
                f"the Responses API arrived in {RESPONSES_SINCE}; this is openai {openai.__version__}"
            )
        if case["kind"] == "stream":
            api.script(Reply(events=event_sse(case["chunks"])))
            for _event in client.responses.create(model=MODELS[case["provider"]], input="Hi", stream=True):
                pass
        else:
            api.script(Reply(body=case["payload"]))
            client.responses.create(model=MODELS[case["provider"]], input="Hi")


def _openai_embeddings(api: FakeAPI, rec: Recorded, case: dict[str, Any]) -> None:
    api.script(Reply(body=case["payload"]))
    with _openai(api, rec) as client:
        client.embeddings.create(model=MODELS[case["provider"]], input="Hi")


def _anthropic_messages(api: FakeAPI, rec: Recorded, case: dict[str, Any]) -> None:
    sdk_client = anthropic.Anthropic(api_key="k", base_url=api.url, max_retries=0)
    with meterline.instrument(sdk_client, rec.meter) as client:
        if case["kind"] == "stream":
            api.script(Reply(events=event_sse(case["chunks"])))
            stream = client.messages.create(
                model=MODELS[case["provider"]], max_tokens=100, messages=MESSAGES, stream=True
            )
            for _event in stream:
                pass
        else:
            api.script(Reply(body=case["payload"]))
            client.messages.create(model=MODELS[case["provider"]], max_tokens=100, messages=MESSAGES)


def _gemini_generate(api: FakeAPI, rec: Recorded, case: dict[str, Any]) -> None:
    http_options: Any = {"base_url": api.url, "api_version": "v1beta"}
    client = meterline.instrument(genai.Client(api_key="k", http_options=http_options), rec.meter)
    try:
        if case["kind"] == "stream":
            api.script(Reply(events=gemini_sse(case["chunks"])))
            for _chunk in client.models.generate_content_stream(
                model=MODELS[case["provider"]], contents="Hi", config=NO_AFC
            ):
                pass
        else:
            api.script(Reply(body=case["payload"]))
            client.models.generate_content(model=MODELS[case["provider"]], contents="Hi", config=NO_AFC)
    finally:
        # Its connection closed here, not by the collector during a later test (a ResourceWarning
        # there fails that test). Older google-genai clients have no close().
        close = getattr(client, "close", None)
        if close is not None:
            close()


CALLS: dict[tuple[str, str], Call] = {
    ("openai", "chat"): _openai_chat,
    ("openai", "responses"): _openai_responses,
    ("openai", "embeddings"): _openai_embeddings,
    ("anthropic", "messages"): _anthropic_messages,
    ("gcp.gemini", "generate_content"): _gemini_generate,
}
"""Fixture (provider, api) -> how to make that call through the SDK's client."""


def _cases() -> Iterator[Any]:
    for kind in ("response", "stream"):
        for name, case in valid(kind):
            if (case["provider"], case["api"]) in CALLS:
                yield pytest.param(case, id=name)


@pytest.mark.filterwarnings("ignore::meterline.UnpricedModelWarning")
@pytest.mark.parametrize("case", list(_cases()))
def test_case_is_recorded_with_its_usage(api: FakeAPI, rec: Recorded, case: dict[str, Any]) -> None:
    """The case's body, parsed by the installed SDK, is recorded with the usage the case expects."""
    CALLS[case["provider"], case["api"]](api, rec, case)
    expected = None if case["expected"] is None else meterline.Usage.from_dict(case["expected"])
    event = rec.only
    if case.get("complete", True):
        assert event.usage == expected
    else:  # a stream cut before its final count: what it reported is a lower bound, never exact
        assert (event.usage, event.partial_usage) == (None, expected)
