"""LangChain chat models of the tests' local server."""

from __future__ import annotations

from typing import Any


def chat_openai_of(url: str, **settings: Any) -> Any:
    """A ChatOpenAI of the local server at ``url`` (no retries), with HTTP clients of its own.

    LangChain shares its default HTTP clients between models of the same base URL, and a later
    test's server may reuse this one's port: closing a shared client would close that test's.
    """
    import langchain_openai  # a test extra: the callers skip without it
    import openai

    model: Any = langchain_openai.ChatOpenAI  # called with the keywords the tests pass through
    return model(
        base_url=f"{url}/v1",
        api_key="k",
        max_retries=0,
        http_client=openai.DefaultHttpxClient(),
        http_async_client=openai.DefaultAsyncHttpxClient(),
        **settings,
    )
