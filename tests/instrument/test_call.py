"""One metered call: the endpoint says which API answered, and the response is read with its rules."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anthropic
import openai
import pytest

import meterline
from meterline._instrument import _openai
from tests.instrument.server import FakeAPI, Reply, fixture

CHAT = fixture("openai/chat_plain")
RESPONSES = fixture("openai/responses_plain")
EMBEDDINGS = fixture("openai/embeddings_single")
MESSAGE = fixture("anthropic/message_plain")
DEEPSEEK = fixture("deepseek/chat_cache_hit_miss")
MESSAGES: Any = [{"role": "user", "content": "Hi"}]


class ApiSpy(meterline.Meter):
    """A meter that keeps the ``api`` each record() was told, and the events."""

    def __init__(self) -> None:
        super().__init__()
        self.apis: list[str | None] = []
        self.events: list[meterline.UsageEvent] = []
        self.subscribe(self.events.append)

    def record(self, *args: Any, **kwargs: Any) -> meterline.UsageEvent:
        """Keep the API, then record as a Meter does."""
        self.apis.append(kwargs.get("api"))
        return super().record(*args, **kwargs)


@pytest.fixture
def spy() -> ApiSpy:
    """A fresh meter that keeps the APIs it was told."""
    return ApiSpy()


@pytest.fixture
def client(api: FakeAPI, spy: ApiSpy) -> Iterator[openai.OpenAI]:
    """An OpenAI client of the local server, instrumented."""
    with openai.OpenAI(api_key="k", base_url=f"{api.url}/v1", max_retries=0) as sdk_client:
        yield meterline.instrument(sdk_client, spy)


def test_each_openai_endpoint_says_its_api(api: FakeAPI, spy: ApiSpy, client: openai.OpenAI) -> None:
    """Chat completions, embeddings and (where the SDK has it) Responses are recorded with their API."""
    cases = [CHAT, EMBEDDINGS]
    expected = ["openai.chat", "openai.embeddings"]
    if hasattr(client, "responses"):  # the Responses API arrived in openai 1.66
        cases.append(RESPONSES)
        expected.append("openai.responses")
    api.script(*(Reply(body=case["payload"]) for case in cases))
    client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    client.embeddings.create(model="text-embedding-3-small", input="Hi")
    if hasattr(client, "responses"):
        client.responses.create(model="gpt-4o-mini", input="Hi")
    assert spy.apis == expected
    assert [event.usage is not None for event in spy.events] == [True] * len(cases)


def test_anthropic_messages_say_their_api(api: FakeAPI, spy: ApiSpy) -> None:
    """An Anthropic message is recorded as the Messages API's."""
    api.script(Reply(body=MESSAGE["payload"]))
    with anthropic.Anthropic(api_key="k", base_url=api.url, max_retries=0) as sdk_client:
        meterline.instrument(sdk_client, spy)
        sdk_client.messages.create(model="claude-opus-4-7", max_tokens=100, messages=MESSAGES)
    assert spy.apis == ["anthropic.messages"]
    assert spy.events[0].usage == meterline.Usage.from_dict(MESSAGE["expected"])


def test_a_compatible_host_is_read_with_its_own_rules(api: FakeAPI, spy: ApiSpy) -> None:
    """An OpenAI client of DeepSeek's host records DeepSeek's API: its cache hits are counted."""
    api.script(Reply(body=DEEPSEEK["payload"]))
    with openai.OpenAI(api_key="k", base_url="https://api.deepseek.com/v1", max_retries=0) as sdk_client:
        meterline.instrument(sdk_client, spy)  # the provider is told by the host
        sdk_client.base_url = f"{api.url}/v1"  # then the requests go to the local server
        sdk_client.chat.completions.create(model="deepseek-chat", messages=MESSAGES)
    assert spy.apis == ["deepseek.chat"]
    event = spy.events[0]
    assert event.provider == "deepseek"
    assert event.usage == meterline.Usage.from_dict(DEEPSEEK["expected"])
    assert event.usage is not None
    assert event.usage.cache_read_tokens > 0


@pytest.mark.parametrize(
    ("provider", "chat", "embeddings"),
    [
        ("openai", "openai.chat", "openai.embeddings"),
        ("azure.ai.openai", "openai.chat", "openai.embeddings"),
        ("deepseek", "deepseek.chat", "openai.embeddings"),
        ("groq", "groq.chat", "openai.embeddings"),
        ("x_ai", "xai.chat", "openai.embeddings"),
        ("mistral_ai", "mistral.chat", "mistral.embeddings"),
    ],
)
def test_compatible_providers_map_to_their_apis(provider: str, chat: str, embeddings: str) -> None:
    """Each OpenAI-compatible provider's chat (and embeddings) are read as its own API; every API is known."""
    endpoints = _openai.endpoints(provider)
    apis = {".".join((*endpoint.path, endpoint.method)): endpoint.api for endpoint in endpoints}
    assert apis["chat.completions.create"] == apis["chat.completions.parse"] == chat
    assert apis["responses.create"] == "openai.responses"
    assert apis["embeddings.create"] == embeddings
    assert {endpoint.api for endpoint in endpoints} <= set(meterline.APIS)


def test_a_body_that_does_not_fit_the_api_is_recorded_unmeasured(api: FakeAPI) -> None:
    """A chat call answered with another API's body is not guessed at: unmeasured, counted, no error."""
    meter = meterline.Meter()
    events: list[meterline.UsageEvent] = []
    meter.subscribe(events.append)
    api.script(Reply(body=MESSAGE["payload"]))
    with openai.OpenAI(api_key="k", base_url=f"{api.url}/v1", max_retries=0) as sdk_client:
        meterline.instrument(sdk_client, meter)
        sdk_client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert [event.usage for event in events] == [None]
    assert meter.stats().machinery_errors == 1
