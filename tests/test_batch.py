"""A Batch API job's results are recorded at the batch price, one event per billed request."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from meterline import ConfigurationError, MalformedUsageError, Meter, Usage, record_batch
from tests.ledger.conformance import load_fixture


def _openai_line(custom_id: str, status: int | None = 200) -> dict[str, Any]:
    """A line of OpenAI's batch output file (``/v1/chat/completions`` requests)."""
    if status is None:
        return {
            "id": f"batch_req_{custom_id}",
            "custom_id": custom_id,
            "response": None,
            "error": {
                "code": "batch_expired",
                "message": "This request could not be executed before the batch expired.",
            },
        }
    body = (
        load_fixture("openai/chat_plain.json")
        if status == 200
        else {"error": {"message": "bad", "type": "invalid_request_error"}}
    )
    return {
        "id": f"batch_req_{custom_id}",
        "custom_id": custom_id,
        "response": {"status_code": status, "request_id": f"req_{custom_id}", "body": body},
        "error": None,
    }


def _anthropic_line(custom_id: str, kind: str = "succeeded") -> dict[str, Any]:
    """A line of Anthropic's Message Batches results."""
    if kind != "succeeded":
        result: dict[str, Any] = {"type": kind}
        if kind == "errored":
            result["error"] = {"type": "error", "error": {"type": "invalid_request_error", "message": "bad"}}
        return {"custom_id": custom_id, "result": result}
    message = load_fixture("anthropic/message_plain.json")
    message["usage"]["service_tier"] = "batch"
    return {"custom_id": custom_id, "result": {"type": "succeeded", "message": message}}


def test_openai_batch_output_is_recorded_at_half_price(tmp_path: Path) -> None:
    """Succeeded requests become batch events priced at half; failed and expired ones are not billed."""
    path = tmp_path / "batch_output.jsonl"
    lines = [_openai_line("r1"), _openai_line("r2", 400), _openai_line("r3"), _openai_line("r4", None)]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    meter = Meter()
    result = record_batch(path, meter=meter, tags={"job": "batch_abc"})
    assert result.not_billed == 2
    assert [event.operation_id for event in result.events] == ["r1", "r3"]
    event = result.events[0]
    assert (event.batch, event.provider, event.dimensions["job"]) == (True, "openai", "batch_abc")
    standard = Meter().record(load_fixture("openai/chat_plain.json"))
    assert standard.cost is not None
    assert event.cost == standard.cost / 2
    assert meter.totals().cost == standard.cost


def test_anthropic_batch_results_are_recorded_at_half_price() -> None:
    """Anthropic's succeeded results are half price; errored, expired and canceled ones are not billed."""
    lines = [
        _anthropic_line("a"),
        _anthropic_line("b", "errored"),
        _anthropic_line("c", "expired"),
        _anthropic_line("d", "canceled"),
        _anthropic_line("e"),
    ]
    meter = Meter()
    result = record_batch((json.dumps(line) for line in lines), meter=meter)
    assert result.not_billed == 3
    assert [(e.operation_id, e.batch, e.provider) for e in result.events] == [
        ("a", True, "anthropic"),
        ("e", True, "anthropic"),
    ]
    body = load_fixture("anthropic/message_plain.json")
    standard = Meter().record(body)
    assert standard.cost is not None
    assert result.events[0].cost == standard.cost / 2


@pytest.mark.parametrize(
    "bad",
    [
        "not json",
        "[1, 2]",
        json.dumps({"custom_id": "x"}),
        json.dumps({"custom_id": 7, "result": {"type": "succeeded", "message": {}}}),
        json.dumps({"custom_id": "x", "result": {"type": "succeeded", "message": None}}),
        json.dumps({"custom_id": "x", "response": {"status_code": 200, "body": "text"}, "error": None}),
        json.dumps(
            _openai_line("neg")
            | {
                "response": {
                    "status_code": 200,
                    "body": {
                        **load_fixture("openai/chat_plain.json"),
                        "usage": {"prompt_tokens": -1, "completion_tokens": 1, "total_tokens": 0},
                    },
                }
            }
        ),
    ],
)
def test_a_bad_line_records_nothing(bad: str) -> None:
    """A line of neither format, or a body with bad usage, raises naming it; no line is recorded."""
    meter = Meter()
    with pytest.raises(MalformedUsageError):
        record_batch([json.dumps(_openai_line("ok")), bad], meter=meter)
    assert meter.totals().events == 0
    assert meter.totals().usage == Usage()


def test_the_default_meter_and_an_azure_batch() -> None:
    """Without a meter the process-wide one records; provider= names who billed the job."""
    import meterline

    meterline.reset_defaults()
    result = record_batch([_openai_line("z")], provider="azure")
    assert result.events[0].provider == "azure.ai.openai"
    assert meterline.get_meter().totals().events == 1
    assert result.events[0].cost is not None
    assert result.events[0].cost > Decimal(0)
    meterline.reset_defaults()


def test_a_file_that_cannot_be_read_is_named(tmp_path: Path) -> None:
    """A missing results file raises ConfigurationError naming it."""
    with pytest.raises(ConfigurationError, match=r"no-such\.jsonl"):
        record_batch(tmp_path / "no-such.jsonl", meter=Meter())
