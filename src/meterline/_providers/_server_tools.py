"""Calls of a provider's own (server-side) tools that a response lists outside its usage block.

Providers bill these per call, apart from the tokens they add. Anthropic counts them inside
the usage block (``server_tool_use``, read in `_anthropic`); the others list them in the body:

- OpenAI's Responses API has an output item per tool call: ``web_search_call`` (billed per
  search: an item whose action opens or searches a page it already found is not one),
  ``file_search_call`` (per call) and ``code_interpreter_call`` (per container: the calls of
  one container are one session).
- Gemini's grounding with Google Search lists the queries it ran in each candidate's
  ``groundingMetadata.webSearchQueries``. Gemini 3 and later bill each query; Gemini 2.x and
  earlier bill a grounded prompt once, however many queries it ran.
"""

from __future__ import annotations as _annotations

from typing import Any, Final

from meterline._usage import Usage, with_units
from meterline.exceptions import MalformedUsageError

__all__ = [
    "gemini_searches",
    "responses_tool_calls",
    "with_gemini_searches",
    "with_responses_tools",
    "with_searches",
]

_OUTPUT_NAMES: Final = (
    "output[type=web_search_call]",
    "web_fetch_requests",
    "output[type=file_search_call]",
    "output[type=code_interpreter_call]",
)
_GEMINI_NAMES: Final = (
    "candidates[].groundingMetadata.webSearchQueries",
    "web_fetch_requests",
    "file_search_requests",
    "code_execution_requests",
)
_NOT_SEARCHES: Final = frozenset({"open_page", "find", "find_in_page"})
"""``web_search_call`` actions that read a page already found: not billed as a search."""
_PER_PROMPT: Final = ("gemini-1.", "gemini-2.", "models/gemini-1.", "models/gemini-2.")
"""Gemini versions that bill grounding per grounded prompt (later ones: per search query)."""


def responses_tool_calls(output: object) -> tuple[int, int, int, int]:
    """Web searches, web fetches (none), file searches and code sessions in a Responses ``output``.

    Raises:
        MalformedUsageError: when ``output`` is not a list.
    """
    if output is None:
        return (0, 0, 0, 0)
    if type(output) is not list:
        raise MalformedUsageError("output", output, "a list of output items")
    searches = file_searches = 0
    containers: set[object] = set()
    sessions = 0
    for item in output:
        if type(item) is not dict:
            continue
        kind = item.get("type")
        if kind == "web_search_call":
            action = item.get("action")
            done = action.get("type") if type(action) is dict else None
            if type(done) is not str or done not in _NOT_SEARCHES:
                searches += 1
        elif kind == "file_search_call":
            file_searches += 1
        elif kind == "code_interpreter_call":
            container = item.get("container_id")
            if type(container) is str and container:
                containers.add(container)
            else:
                sessions += 1
    return (searches, 0, file_searches, sessions + len(containers))


def with_responses_tools(usage: Usage, output: object) -> Usage:
    """``usage`` with the server tool calls a Responses ``output`` lists."""
    counts = responses_tool_calls(output)
    if not any(counts):
        return usage
    return with_units(usage, _OUTPUT_NAMES, counts)


def gemini_searches(candidates: object, model: object) -> int:
    """The billed Google Search groundings of a Gemini response's ``candidates``.

    Args:
        candidates: The body's ``candidates`` list (camelCase or snake_case keys).
        model: The served model version: Gemini 2.x and earlier bill one grounded prompt.

    Raises:
        MalformedUsageError: when a candidate's queries are not a list.
    """
    if type(candidates) is not list:
        return 0
    queries = 0
    for candidate in candidates:
        if type(candidate) is not dict:
            continue
        grounding = candidate.get("groundingMetadata") or candidate.get("grounding_metadata")
        if type(grounding) is not dict:
            continue
        ran = grounding.get("webSearchQueries") or grounding.get("web_search_queries")
        if ran is None:
            continue
        if type(ran) is not list:
            raise MalformedUsageError(_GEMINI_NAMES[0], ran, "a list of query strings")
        queries += len(ran)
    if queries and type(model) is str and model.startswith(_PER_PROMPT):
        return 1
    return queries


def with_gemini_searches(usage: Usage, body: dict[Any, Any]) -> Usage:
    """``usage`` with the Google Search groundings a Gemini response ``body`` lists.

    On every Gemini response's path: a body none of whose candidates was grounded (the common
    case) costs one loop over them, without a call.
    """
    candidates = body.get("candidates")
    if type(candidates) is not list:
        return usage
    for candidate in candidates:
        if type(candidate) is dict and (
            "groundingMetadata" in candidate or "grounding_metadata" in candidate
        ):
            break
    else:
        return usage
    model = body.get("modelVersion") or body.get("model_version")
    return with_searches(usage, gemini_searches(candidates, model))


def with_searches(usage: Usage, searches: int) -> Usage:
    """``usage`` with ``searches`` Google Search groundings (counted by `gemini_searches`)."""
    if not searches:
        return usage
    return with_units(usage, _GEMINI_NAMES, (searches, 0, 0, 0))
