"""Real-shaped provider bodies the integration tests serve, built from tests/fixtures."""

from __future__ import annotations

import copy
import json
from typing import Any

from tests.instrument.server import fixture

CHAT = fixture("openai/chat_plain")
CHAT_CACHED = fixture("openai/chat_cached_prompt")
CHAT_STREAM = fixture("openai/chat_stream_include_usage")
RESPONSES = fixture("openai/responses_reasoning")
RESPONSES_STREAM = fixture("openai/responses_stream_completed")
MESSAGE = fixture("anthropic/message_cache_write_1h_5m_split")
MESSAGE_STREAM = fixture("anthropic/stream_thinking_cache_1h")


def chat_tool_call(name: str, arguments: dict[str, Any], call_id: str = "call_1") -> dict[str, Any]:
    """CHAT's body with its message replaced by one tool call (finish_reason ``tool_calls``)."""
    body: dict[str, Any] = copy.deepcopy(CHAT["payload"])
    body["choices"][0]["message"] = {
        "role": "assistant",
        "content": None,
        "refusal": None,
        "annotations": [],
        "tool_calls": [
            {
                "id": call_id,
                "type": "function",
                "function": {"name": name, "arguments": json.dumps(arguments)},
            }
        ],
    }
    body["choices"][0]["finish_reason"] = "tool_calls"
    return body
