"""The google-genai client, sync and aio, against a local server speaking Gemini's REST and SSE."""

from __future__ import annotations

import asyncio
import gc
from typing import Any

import pytest
from google import genai

import meterline
from tests.instrument.conftest import Recorded
from tests.instrument.server import FakeAPI, Reply, fixture, gemini_sse, usage_of

GENERATE = fixture("gcp.gemini/generate_plain")
STREAM = fixture("gcp.gemini/stream_cumulative_snapshots")
EMBED = {"embeddings": [{"values": [0.1, 0.2]}]}
MODEL = "gemini-2.5-flash"
NO_AFC: Any = {"automatic_function_calling": {"disable": True}}


@pytest.fixture
def client(api: FakeAPI, rec: Recorded) -> genai.Client:
    """A client of the local server, instrumented."""
    return meterline.instrument(
        genai.Client(api_key="k", http_options={"base_url": api.url, "api_version": "v1beta"}), rec.meter
    )


def test_generate_content(api: FakeAPI, rec: Recorded, client: genai.Client) -> None:
    """generate_content is recorded once, with Gemini's usage rules and the served model."""
    api.script(Reply(body=GENERATE["payload"]))
    client.models.generate_content(model=MODEL, contents="Hi", config=NO_AFC)
    event = rec.only
    assert (event.provider, event.operation, event.model) == (
        "gcp.gemini",
        "generate_content",
        GENERATE["model"],
    )
    assert event.usage == usage_of(GENERATE)


def test_generate_content_stream(api: FakeAPI, rec: Recorded, client: genai.Client) -> None:
    """The SSE stream yields every chunk and records the last cumulative snapshot."""
    api.script(Reply(events=gemini_sse(STREAM["chunks"])))
    chunks = list(client.models.generate_content_stream(model=MODEL, contents="Hi", config=NO_AFC))
    assert len(chunks) == len(STREAM["chunks"])
    assert "alt=sse" in api.received[0].path
    assert rec.only.usage == usage_of(STREAM)


def test_stream_early_break(api: FakeAPI, rec: Recorded, client: genai.Client) -> None:
    """Breaking out of a Gemini stream records the call (cancelled) once the stream is dropped."""
    api.script(Reply(events=gemini_sse(STREAM["chunks"])))
    for _chunk in client.models.generate_content_stream(model=MODEL, contents="Hi", config=NO_AFC):
        break
    gc.collect()
    assert rec.only.status == "cancelled"


def test_embed_content_is_unmeasured(api: FakeAPI, rec: Recorded, client: genai.Client) -> None:
    """The Gemini API reports no usage for embeddings: the call is recorded as unmeasured."""
    api.script(Reply(body=EMBED))
    client.models.embed_content(model=MODEL, contents="Hi")
    assert (rec.only.operation, rec.only.usage) == ("embeddings", None)


def test_aio(api: FakeAPI, rec: Recorded, client: genai.Client) -> None:
    """client.aio records generate_content, its stream and embed_content."""
    api.script(Reply(body=GENERATE["payload"]), Reply(events=gemini_sse(STREAM["chunks"])), Reply(body=EMBED))

    async def main() -> None:
        await client.aio.models.generate_content(model=MODEL, contents="Hi", config=NO_AFC)
        async for _chunk in await client.aio.models.generate_content_stream(
            model=MODEL, contents="Hi", config=NO_AFC
        ):
            pass
        await client.aio.models.embed_content(model=MODEL, contents="Hi")
        aclose = getattr(client.aio, "aclose", None)
        if aclose is not None:
            await aclose()
        else:  # google-genai before 1.39 has no aclose(): close its connection pool here
            pool: Any = client._api_client._async_httpx_client
            await pool.aclose()

    asyncio.run(main())
    assert [event.usage for event in rec.events] == [usage_of(GENERATE), usage_of(STREAM), None]


def test_server_error(api: FakeAPI, rec: Recorded, client: genai.Client) -> None:
    """A 500 reaches the user as google-genai's error and is recorded with status 500."""
    api.script(Reply(status=500, body={"error": {"code": 500, "message": "x", "status": "INTERNAL"}}))
    with pytest.raises(genai.errors.APIError):
        client.models.generate_content(model=MODEL, contents="Hi", config=NO_AFC)
    assert rec.only.status == "500"


def test_dropped_stream(api: FakeAPI, rec: Recorded, client: genai.Client) -> None:
    """A connection dropped mid-stream raises to the user and records an error with the usage so far."""
    api.script(Reply(events=gemini_sse(STREAM["chunks"]), drop_after=2))
    with pytest.raises(Exception) as raised:
        list(client.models.generate_content_stream(model=MODEL, contents="Hi", config=NO_AFC))
    assert rec.only.status == type(raised.value).__name__


def test_stream_refused_before_sending_records_nothing(api: FakeAPI) -> None:
    """A stream the SDK refuses on its first next(), before sending, releases its reservation."""
    if "should_return_http_response" not in genai.types.GenerateContentConfig.model_fields:
        pytest.skip("GenerateContentConfig.should_return_http_response did not exist in this google-genai")
    recorded = Recorded()
    recorded.meter.add_budget(meterline.Budget(max_requests=1))
    client = meterline.instrument(
        genai.Client(api_key="k", http_options={"base_url": api.url, "api_version": "v1beta"}), recorded.meter
    )
    config: Any = {**NO_AFC, "should_return_http_response": True}
    with pytest.raises(ValueError):
        list(client.models.generate_content_stream(model=MODEL, contents="Hi", config=config))
    assert (api.received, recorded.events) == ([], [])
    (status,) = recorded.meter.budget_status()
    assert (status.used, status.reserved) == (0, 0)


def test_stream_is_recorded_in_the_scope_of_its_call(
    api: FakeAPI, rec: Recorded, client: genai.Client
) -> None:
    """A sync stream opened in a scope and read outside it is recorded with that scope's dimensions."""
    api.script(Reply(events=gemini_sse(STREAM["chunks"])))
    with rec.meter.scope(user="alice"):
        stream = client.models.generate_content_stream(model=MODEL, contents="Hi", config=NO_AFC)
    list(stream)
    assert dict(rec.only.dimensions) == {"user": "alice"}
    assert rec.only.usage == usage_of(STREAM)


BATCH = {
    "name": "batches/123456789abc",
    "metadata": {
        "@type": "type.googleapis.com/google.ai.generativelanguage.v1main.GenerateContentBatch",
        "state": "BATCH_STATE_PENDING",
    },
}
"""A batch job's creation, as the Gemini API answers ``:batchGenerateContent`` (billed later)."""


@pytest.mark.skipif(
    not hasattr(genai.types, "InlinedRequest"), reason="this google-genai creates batches on Vertex AI only"
)
def test_a_request_meterline_cannot_meter_is_counted(
    api: FakeAPI, rec: Recorded, client: genai.Client, caplog: pytest.LogCaptureFixture
) -> None:
    """A batch job goes through, is counted by kind (model folded) and logged once; metered calls are not."""
    api.script(
        Reply(body=BATCH),
        Reply(body=BATCH),
        Reply(body=GENERATE["payload"]),
        Reply(events=gemini_sse(STREAM["chunks"])),
    )
    requests: Any = [{"contents": [{"parts": [{"text": "Hi"}], "role": "user"}]}]
    for _ in range(2):
        assert client.batches.create(model="gemini-2.0-flash", src=requests).name == BATCH["name"]
    client.models.generate_content(model="gemini-2.0-flash", contents="Hi")
    list(client.models.generate_content_stream(model="gemini-2.0-flash", contents="Hi"))
    assert rec.meter.stats().unmetered_calls == (("google POST models/{model}:batchGenerateContent", 2),)
    assert sum("cannot meter google POST" in message for message in caplog.messages) == 1
    assert len(rec.events) == 2
