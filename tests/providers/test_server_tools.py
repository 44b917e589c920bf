"""Server-side tool calls are counted from each provider's own fields; hostile values are refused."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meterline import MalformedUsageError, StreamAccumulator, usage_from
from meterline._providers._server_tools import gemini_searches, responses_tool_calls

FIXTURES = Path(__file__).parent.parent / "fixtures"


def _payload(name: str) -> dict[str, Any]:
    payload: dict[str, Any] = json.loads((FIXTURES / name).read_text())["payload"]
    return payload


def test_responses_items_count_searches_file_searches_and_containers() -> None:
    """Web searches (not page opens), file searches, and one session per code container."""
    output = _payload("openai/responses_server_tools.json")["output"]
    assert responses_tool_calls(output) == (2, 0, 1, 1)
    more = [*output, {"type": "code_interpreter_call", "id": "ci_x", "container_id": "cntr_other"}]
    assert responses_tool_calls(more) == (2, 0, 1, 2)
    assert responses_tool_calls(None) == (0, 0, 0, 0)
    assert responses_tool_calls([{"type": "message"}, "junk", 3]) == (0, 0, 0, 0)
    odd = [
        {"type": "web_search_call", "action": {"type": ["search"]}},
        {"type": "code_interpreter_call", "container_id": []},
    ]
    assert responses_tool_calls(odd) == (1, 0, 0, 1)  # unhashable values are no action or container


def test_gemini_bills_a_grounded_prompt_before_gemini_3_and_each_query_after() -> None:
    """Gemini 2.x: one grounded prompt however many queries; Gemini 3: each query."""
    candidates = [{"groundingMetadata": {"webSearchQueries": ["a", "b", "c"]}}]
    assert gemini_searches(candidates, "gemini-2.5-flash") == 1
    assert gemini_searches(candidates, "gemini-3-pro-preview") == 3
    assert gemini_searches(candidates, None) == 3
    assert gemini_searches([{"grounding_metadata": {"web_search_queries": ["a"]}}], "gemini-3.5-flash") == 1
    assert gemini_searches([{"groundingMetadata": {"webSearchQueries": []}}], "gemini-2.5-pro") == 0
    assert gemini_searches(None, "gemini-3-pro") == 0


def test_anthropic_counts_its_server_tools_inside_the_usage_block() -> None:
    """``usage.server_tool_use`` gives web searches and web fetches."""
    body = _payload("anthropic/message_server_tool_web_search.json")
    body["usage"]["server_tool_use"] = {"web_search_requests": 3, "web_fetch_requests": 2}
    usage = usage_from(body)
    assert usage is not None
    assert (usage.web_search_requests, usage.web_fetch_requests) == (3, 2)
    assert usage.input_tokens == 10500  # tokens as before
    body["usage"]["server_tool_use"] = None
    usage = usage_from(body)
    assert usage is not None
    assert not usage.has_units


@pytest.mark.parametrize("bad", [-1, True, 1.0, "2", 2**63, [1], None])
def test_bad_server_tool_counts_are_refused_naming_the_field(bad: object) -> None:
    """A count that is not a non-negative int names Anthropic's field (null is zero)."""
    body = _payload("anthropic/message_server_tool_web_search.json")
    body["usage"]["server_tool_use"] = {"web_search_requests": bad, "web_fetch_requests": 0}
    if bad is None:
        usage = usage_from(body)
        assert usage is not None
        assert usage.web_search_requests == 0
        return
    with pytest.raises(MalformedUsageError, match=r"server_tool_use\.web_search_requests"):
        usage_from(body)


@pytest.mark.parametrize("bad", ["x", 3, {"a": 1}])
def test_a_server_tool_block_or_query_list_of_the_wrong_type_is_refused(bad: object) -> None:
    """``server_tool_use`` must be an object and ``webSearchQueries`` a list."""
    body = _payload("anthropic/message_server_tool_web_search.json")
    body["usage"]["server_tool_use"] = bad
    if isinstance(bad, dict):
        usage_from(body)  # unknown keys of the object are no tool calls
    else:
        with pytest.raises(MalformedUsageError, match="server_tool_use"):
            usage_from(body)
    gemini = _payload("gcp.gemini/generate_grounding_gemini3_per_query.json")
    gemini["candidates"][0]["groundingMetadata"]["webSearchQueries"] = bad
    with pytest.raises(MalformedUsageError, match="webSearchQueries"):
        usage_from(gemini)
    responses = _payload("openai/responses_server_tools.json")
    responses["output"] = bad
    with pytest.raises(MalformedUsageError, match="output"):
        usage_from(responses)


@given(st.lists(st.sampled_from(["search", "open_page", "find", None]), max_size=30), st.integers(0, 5))
@settings(max_examples=80, deadline=None)
def test_responses_searches_are_the_search_actions(actions: list[str | None], containers: int) -> None:
    """Any mix of web search items: exactly the search (or action-less) ones are billed."""
    output: list[dict[str, Any]] = [
        {"type": "web_search_call", "id": f"ws_{i}", "status": "completed"}
        | ({} if action is None else {"action": {"type": action}})
        for i, action in enumerate(actions)
    ]
    output += [
        {"type": "code_interpreter_call", "id": f"ci_{i}", "container_id": f"c{i % containers}"}
        for i in range(containers * 2)
    ]
    searches = sum(1 for action in actions if action in ("search", None))
    assert responses_tool_calls(output) == (searches, 0, 0, containers)


def test_streams_count_tool_calls_as_their_bodies_do() -> None:
    """A Responses stream's terminal event and a Gemini stream's grounded chunk give the same counts."""
    for name, provider, searches in (
        ("openai/responses_stream_web_search.json", "openai", 1),
        ("gcp.gemini/stream_grounding_gemini3.json", "gcp.gemini", 3),
    ):
        acc = StreamAccumulator(provider)
        for chunk in json.loads((FIXTURES / name).read_text())["chunks"]:
            acc.add(chunk)
        assert acc.usage is not None
        assert acc.usage.web_search_requests == searches, name
