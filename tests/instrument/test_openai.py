"""The OpenAI client, sync and async, against a local server speaking OpenAI's wire format."""

from __future__ import annotations

import asyncio
import copy
import gc
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import openai
import pydantic
import pytest

import meterline
from tests.instrument.conftest import Recorded
from tests.instrument.server import FakeAPI, Reply, event_sse, fixture, openai_sse, usage_of

CHAT = fixture("openai/chat_plain")
CHAT_STREAM = fixture("openai/chat_stream_include_usage")
RESPONSES = fixture("openai/responses_plain")
RESPONSES_STREAM = fixture("openai/responses_stream_completed")
EMBEDDINGS = fixture("openai/embeddings_single")
OPENROUTER_STREAM = fixture("openrouter/chat_stream_usage_cost")
MESSAGES: Any = [{"role": "user", "content": "Hi"}]


def no_usage_chunks() -> list[dict[str, object]]:
    """The include_usage stream without its usage-only chunk (what the API sends without the flag)."""
    return [chunk for chunk in CHAT_STREAM["chunks"] if chunk["choices"]]


@pytest.fixture
def aclient(api: FakeAPI, rec: Recorded) -> Callable[[], openai.AsyncOpenAI]:
    """Makes an instrumented async client (use it in ``async with``, inside the test's loop)."""
    return lambda: meterline.instrument(
        openai.AsyncOpenAI(api_key="k", base_url=f"{api.url}/v1", max_retries=0), rec.meter
    )


class TestChat:
    """Chat completions."""

    def test_create_records_one_event(self, api: FakeAPI, rec: Recorded, client: openai.OpenAI) -> None:
        """A chat completion is recorded once: served and requested model, provider, usage, latency, ok."""
        api.script(Reply(body=CHAT["payload"]))
        response = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        assert isinstance(response, openai.types.chat.ChatCompletion)
        event = rec.only
        assert event.model == CHAT["model"]
        assert event.request_model == "gpt-4o-mini"
        assert event.provider == "openai"
        assert event.operation == "chat"
        assert event.status == "ok"
        assert event.usage == usage_of(CHAT)
        assert event.latency_ms is not None
        assert event.latency_ms > 0

    def test_the_tier_asked_for_or_served_prices_the_call(
        self, api: FakeAPI, rec: Recorded, client: openai.OpenAI
    ) -> None:
        """``service_tier="flex"`` prices the call at flex; the tier the response reports wins."""
        silent = {key: value for key, value in CHAT["payload"].items() if key != "service_tier"}
        api.script(Reply(body=silent), Reply(body={**silent, "service_tier": "default"}), Reply(body=silent))
        for _ in range(2):
            client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, service_tier="flex")
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        asked, served, plain = rec.events
        assert (asked.service_tier, served.service_tier, plain.service_tier) == ("flex", "default", None)
        assert served.cost == plain.cost
        assert asked.cost is not None
        assert plain.cost is not None
        assert asked.cost < plain.cost  # gpt-4o-mini's flex price (or half, before the data had one)

    def test_async_create(
        self, api: FakeAPI, rec: Recorded, aclient: Callable[[], openai.AsyncOpenAI]
    ) -> None:
        """The async client's chat completion is recorded the same way."""
        api.script(Reply(body=CHAT["payload"]))

        async def main() -> None:
            async with aclient() as sdk_client:
                await sdk_client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)

        asyncio.run(main())
        assert rec.only.usage == usage_of(CHAT)

    def test_stream_asks_for_usage_and_hides_its_chunk(
        self, api: FakeAPI, rec: Recorded, client: openai.OpenAI
    ) -> None:
        """stream=True gets include_usage; the user sees only the chunks with choices; usage is recorded."""
        api.script(Reply(events=openai_sse(CHAT_STREAM["chunks"])))
        stream = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
        assert isinstance(stream, openai.Stream)
        chunks = list(stream)
        assert api.received[0].body["stream_options"] == {"include_usage": True}
        assert len(chunks) == len(no_usage_chunks())
        assert all(chunk.choices for chunk in chunks)
        event = rec.only
        assert event.usage == usage_of(CHAT_STREAM)
        assert event.model == CHAT_STREAM["model"]
        assert event.status == "ok"

    def test_a_streams_stated_cost_and_tier_are_recorded(
        self, api: FakeAPI, rec: Recorded, client: openai.OpenAI
    ) -> None:
        """An OpenRouter stream's last chunk states its cost; the event keeps it beside meterline's."""
        chunks = [{**chunk, "service_tier": "default"} for chunk in OPENROUTER_STREAM["chunks"]]
        api.script(Reply(events=openai_sse(chunks)))
        list(client.chat.completions.create(model="openai/gpt-4o-mini", messages=MESSAGES, stream=True))
        event = rec.only
        assert event.usage == usage_of(OPENROUTER_STREAM)
        assert event.reported_cost == Decimal(OPENROUTER_STREAM["expected_reported_cost"])
        assert event.service_tier == "default"

    def test_user_stream_options_are_kept(self, api: FakeAPI, rec: Recorded, client: openai.OpenAI) -> None:
        """When the user sets stream_options, it is sent as is and the usage chunk is not hidden."""
        api.script(Reply(events=openai_sse(CHAT_STREAM["chunks"])))
        stream = client.chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
        chunks = list(stream)
        assert len(chunks) == len(CHAT_STREAM["chunks"])
        assert chunks[-1].usage is not None
        assert rec.only.usage == usage_of(CHAT_STREAM)

    def test_stream_without_usage_is_unmeasured(
        self, api: FakeAPI, rec: Recorded, client: openai.OpenAI
    ) -> None:
        """A stream that delivered no usage is recorded with usage None (unmeasured), not as free."""
        api.script(Reply(events=openai_sse(no_usage_chunks())))
        list(client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True))
        assert rec.only.usage is None
        assert rec.meter.totals().unmeasured == 1

    def test_async_stream(
        self, api: FakeAPI, rec: Recorded, aclient: Callable[[], openai.AsyncOpenAI]
    ) -> None:
        """The async stream hides the usage chunk and records the usage at its end."""
        api.script(Reply(events=openai_sse(CHAT_STREAM["chunks"])))

        async def main() -> int:
            async with aclient() as sdk_client:
                stream = await sdk_client.chat.completions.create(
                    model="gpt-4o-mini", messages=MESSAGES, stream=True
                )
                assert isinstance(stream, openai.AsyncStream)
                return len([chunk async for chunk in stream])

        assert asyncio.run(main()) == len(no_usage_chunks())
        assert rec.only.usage == usage_of(CHAT_STREAM)

    def test_stream_helper(self, api: FakeAPI, rec: Recorded, client: openai.OpenAI) -> None:
        """chat.completions.stream() (beta.chat.completions.stream() before openai 1.92) is metered once."""
        helper: Any = getattr(client.chat.completions, "stream", None) or client.beta.chat.completions.stream
        api.script(Reply(events=openai_sse(CHAT_STREAM["chunks"])))
        with helper(model="gpt-4o-mini", messages=MESSAGES) as stream:
            text = "".join(e.delta for e in stream if e.type == "content.delta")
        assert text
        assert rec.only.usage == usage_of(CHAT_STREAM)

    def test_early_close_records_cancelled(self, api: FakeAPI, rec: Recorded, client: openai.OpenAI) -> None:
        """Breaking out and closing a stream records it at once as cancelled, usage unknown."""
        api.script(Reply(events=openai_sse(CHAT_STREAM["chunks"])))
        with client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True) as stream:
            for _chunk in stream:
                break
            assert rec.events == []
        event = rec.only
        assert event.status == "cancelled"
        assert event.usage is None

    def test_abandoned_stream_is_recorded_when_collected(
        self, api: FakeAPI, rec: Recorded, client: openai.OpenAI
    ) -> None:
        """A stream dropped half-read is recorded when it is garbage-collected."""
        api.script(Reply(events=openai_sse(CHAT_STREAM["chunks"])))
        stream = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
        next(iter(stream))
        del stream
        gc.collect()
        assert rec.only.status == "cancelled"

    def test_never_iterated_stream_is_recorded_when_collected(
        self, api: FakeAPI, rec: Recorded, client: openai.OpenAI
    ) -> None:
        """A stream never read at all is still recorded (cancelled) once collected."""
        api.script(Reply(events=openai_sse(CHAT_STREAM["chunks"])))
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
        gc.collect()
        assert rec.only.status == "cancelled"

    def test_connection_dropped_mid_stream(self, api: FakeAPI, rec: Recorded, client: openai.OpenAI) -> None:
        """The SDK's own error reaches the user, and the call is recorded with an error status."""
        api.script(Reply(events=openai_sse(CHAT_STREAM["chunks"]), drop_after=3))
        stream = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
        seen: list[Any] = []
        with pytest.raises(Exception) as raised:
            seen.extend(stream)
        assert len(seen) == 3
        event = rec.only
        assert event.status == type(raised.value).__name__
        assert event.usage is None

    @pytest.mark.parametrize("status", [429, 500])
    def test_error_status(self, api: FakeAPI, rec: Recorded, client: openai.OpenAI, status: int) -> None:
        """An HTTP error reaches the user as the SDK's exception and is recorded with its status code."""
        api.script(Reply(status=status, body={"error": {"message": "no", "type": "x"}}))
        with pytest.raises(openai.APIStatusError) as raised:
            client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        assert raised.value.status_code == status
        event = rec.only
        assert event.status == str(status)
        assert event.usage is None
        assert event.model == "gpt-4o-mini"


class TestResponses:
    """The Responses API."""

    def test_create(self, api: FakeAPI, rec: Recorded, client: openai.OpenAI) -> None:
        """A Responses call is recorded with its usage."""
        if not hasattr(client, "responses"):
            pytest.skip(f"the Responses API arrived in openai 1.66; this is openai {openai.__version__}")
        api.script(Reply(body=RESPONSES["payload"]))
        client.responses.create(model="gpt-4o", input="Hi")
        assert rec.only.usage == usage_of(RESPONSES)
        assert rec.only.operation == "chat"

    def test_stream_sync_and_async(
        self, api: FakeAPI, rec: Recorded, client: openai.OpenAI, aclient: Callable[[], openai.AsyncOpenAI]
    ) -> None:
        """A Responses stream (named events, no [DONE]) is recorded from its terminal event, sync, async."""
        if not hasattr(client, "responses"):
            pytest.skip(f"the Responses API arrived in openai 1.66; this is openai {openai.__version__}")
        api.script(Reply(events=event_sse(RESPONSES_STREAM["chunks"])))
        events = list(client.responses.create(model="gpt-4o", input="Hi", stream=True))
        assert len(events) == len(RESPONSES_STREAM["chunks"])
        api.script(Reply(events=event_sse(RESPONSES_STREAM["chunks"])))

        async def main() -> None:
            async with (
                aclient() as sdk_client,
                sdk_client.responses.stream(model="gpt-4o", input="Hi") as stream,
            ):
                async for _event in stream:
                    pass

        asyncio.run(main())
        assert [event.usage for event in rec.events] == [usage_of(RESPONSES_STREAM)] * 2


class TestEmbeddings:
    """Embeddings."""

    def test_create_sync_and_async(
        self, api: FakeAPI, rec: Recorded, client: openai.OpenAI, aclient: Callable[[], openai.AsyncOpenAI]
    ) -> None:
        """Embeddings are recorded as operation embeddings with their input tokens."""
        api.script(Reply(body=EMBEDDINGS["payload"]), Reply(body=EMBEDDINGS["payload"]))
        client.embeddings.create(model="text-embedding-3-small", input="Hi")

        async def main() -> None:
            async with aclient() as sdk_client:
                await sdk_client.embeddings.create(model="text-embedding-3-small", input="Hi")

        asyncio.run(main())
        assert [event.operation for event in rec.events] == ["embeddings"] * 2
        assert [event.usage for event in rec.events] == [usage_of(EMBEDDINGS)] * 2


class TestClient:
    """The client object."""

    def test_copies_are_instrumented(self, api: FakeAPI, rec: Recorded, client: openai.OpenAI) -> None:
        """A copy made with with_options() records to the same meter."""
        api.script(Reply(body=CHAT["payload"]))
        client.with_options(timeout=5).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        assert rec.only.usage == usage_of(CHAT)

    def test_deepcopy_of_payload_is_untouched(
        self, api: FakeAPI, rec: Recorded, client: openai.OpenAI
    ) -> None:
        """The user's messages are sent as given (meterline only adds stream_options to streams)."""
        api.script(Reply(body=CHAT["payload"]))
        messages = copy.deepcopy(MESSAGES)
        client.chat.completions.create(model="gpt-4o-mini", messages=messages)
        assert messages == MESSAGES
        assert "stream_options" not in api.received[0].body


class TestRawAndParse:
    """Raw responses, extra_body, and responses the SDK fails to parse."""

    def test_raw_stream_is_not_asked_for_usage(
        self, api: FakeAPI, rec: Recorded, client: openai.OpenAI
    ) -> None:
        """with_raw_response on a chat stream injects no stream_options; the call is recorded once."""
        api.script(Reply(events=openai_sse(no_usage_chunks())))
        raw = client.chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=MESSAGES, stream=True
        )
        assert "stream_options" not in api.received[0].body
        chunks = list(raw.parse())
        assert len(chunks) == len(no_usage_chunks())
        assert (rec.only.status, rec.only.usage) == ("ok", None)

    def test_streaming_response_is_not_asked_for_usage(
        self, api: FakeAPI, rec: Recorded, client: openai.OpenAI
    ) -> None:
        """with_streaming_response on a chat stream injects no stream_options; every chunk has choices."""
        api.script(Reply(events=openai_sse(no_usage_chunks())))
        with client.chat.completions.with_streaming_response.create(
            model="gpt-4o-mini", messages=MESSAGES, stream=True
        ) as response:
            assert "stream_options" not in api.received[0].body
            assert all(chunk.choices for chunk in response.parse())
        assert rec.only.status == "ok"

    def test_stream_options_in_extra_body_are_the_users(
        self, api: FakeAPI, rec: Recorded, client: openai.OpenAI
    ) -> None:
        """stream_options given in extra_body are sent as is and the usage chunk is not hidden."""
        api.script(Reply(events=openai_sse(CHAT_STREAM["chunks"])))
        stream = client.chat.completions.create(
            model="gpt-4o-mini",
            messages=MESSAGES,
            stream=True,
            extra_body={"stream_options": {"include_usage": True}},
        )
        chunks = list(stream)
        assert api.received[0].body["stream_options"] == {"include_usage": True}
        assert len(chunks) == len(CHAT_STREAM["chunks"])
        assert chunks[-1].usage is not None
        assert rec.only.usage == usage_of(CHAT_STREAM)

    def test_parse_length_error_is_recorded_with_its_usage(
        self, api: FakeAPI, rec: Recorded, client: openai.OpenAI
    ) -> None:
        """A response .parse() rejects (LengthFinishReasonError) is recorded with its status and usage."""
        body = copy.deepcopy(CHAT["payload"])
        body["choices"][0]["finish_reason"] = "length"
        body["choices"][0]["message"]["content"] = '{"a": '
        parse: Any = getattr(client.chat.completions, "parse", None) or client.beta.chat.completions.parse

        class Out(pydantic.BaseModel):
            a: int

        api.script(Reply(body=body))
        with pytest.raises(openai.LengthFinishReasonError):
            parse(model="gpt-4o-mini", messages=MESSAGES, response_format=Out)
        event = rec.only
        assert event.status == "LengthFinishReasonError"
        assert event.usage == usage_of(CHAT)

    def test_parse_failure_settles_the_budget(self, api: FakeAPI) -> None:
        """A response that arrived and failed to parse is charged to the budget, not released."""
        meter = meterline.Meter(budgets=[meterline.Budget(max_requests=5)])
        with openai.OpenAI(api_key="k", base_url=f"{api.url}/v1", max_retries=0) as sdk_client:
            client = meterline.instrument(sdk_client, meter)
            body = copy.deepcopy(CHAT["payload"])
            body["choices"][0]["finish_reason"] = "content_filter"
            parse: Any = getattr(client.chat.completions, "parse", None) or client.beta.chat.completions.parse

            class Out(pydantic.BaseModel):
                a: int

            api.script(Reply(body=body))
            with pytest.raises(openai.ContentFilterFinishReasonError):
                parse(model="gpt-4o-mini", messages=MESSAGES, response_format=Out)
        (status,) = meter.budget_status()
        assert (status.used, status.reserved) == (1, 0)
