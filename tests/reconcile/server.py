"""A local server answering as OpenAI's and Anthropic's admin usage and cost APIs do: documented pages."""

from __future__ import annotations

import json
import threading
import urllib.parse
from collections.abc import Generator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

DAY = timedelta(days=1)


@dataclass
class Line:
    """A provider's line: one model on one day (in one project or workspace)."""

    day: date
    model: str
    input_tokens: int
    output_tokens: int
    cached: int = 0
    requests: int = 1
    cost: Decimal = Decimal(0)
    scope: str | None = None


@dataclass
class AdminAPI:
    """The fake API: its lines, the page size, and every request received (path, query, headers)."""

    lines: list[Line] = field(default_factory=list)
    buckets_per_page: int = 2
    requests: list[tuple[str, dict[str, list[str]], dict[str, str]]] = field(default_factory=list)
    url: str = ""
    fail_with: int | None = None
    hostile: dict[str, Any] = field(default_factory=dict)
    """Fields put into every result as they are (hostile values)."""

    def days(self, query: dict[str, list[str]]) -> list[date]:
        """The UTC days a request's window covers (Unix seconds or RFC 3339)."""
        if "start_time" in query:
            start = datetime.fromtimestamp(int(query["start_time"][0]), tz=UTC)
            end = datetime.fromtimestamp(int(query["end_time"][0]), tz=UTC)
        else:
            start = datetime.fromisoformat(query["starting_at"][0].replace("Z", "+00:00"))
            end = datetime.fromisoformat(query["ending_at"][0].replace("Z", "+00:00"))
        days = []
        while start < end:
            days.append(start.date())
            start += DAY
        return days

    def page(self, path: str, query: dict[str, list[str]]) -> dict[str, Any]:
        """The page a request asks for: ``buckets_per_page`` days from its ``page`` cursor."""
        days = self.days(query)
        first = int(query.get("page", ["0"])[0])
        chosen = days[first : first + self.buckets_per_page]
        more = first + self.buckets_per_page < len(days)
        groups = [*query.get("group_by", []), *query.get("group_by[]", [])]
        grouped = next(
            (field for field in ("project_id", "workspace_id", "api_key_id") if field in groups), None
        )
        data = [self.bucket(path, day, grouped) for day in chosen]
        for bucket in data:
            bucket["results"] = [{**result, **self.hostile} for result in bucket["results"]]
        return {
            "data": data,
            "has_more": more,
            "next_page": str(first + self.buckets_per_page) if more else None,
        }

    def bucket(self, path: str, day: date, grouped: str | None) -> dict[str, Any]:
        """One day's bucket of the endpoint at ``path``, in that API's documented shape."""
        lines = [line for line in self.lines if line.day == day]
        start = datetime.combine(day, datetime.min.time(), tzinfo=UTC)
        if path.startswith("/v1/organization/"):  # OpenAI
            if path.endswith("/costs"):
                results = [_openai_cost(line, grouped) for line in lines]
            else:
                results = [_openai_usage(line, grouped) for line in lines]
            bucket = {"object": "bucket", "start_time": int(start.timestamp())}
            return {**bucket, "end_time": int((start + DAY).timestamp()), "results": results}
        if path.endswith("/cost_report"):
            results = [_anthropic_cost(line, grouped) for line in lines]
        else:
            results = [_anthropic_usage(line, grouped) for line in lines]
        return {
            "starting_at": start.isoformat().replace("+00:00", "Z"),
            "ending_at": (start + DAY).isoformat().replace("+00:00", "Z"),
            "results": results,
        }


def _openai_usage(line: Line, grouped: str | None) -> dict[str, Any]:
    return {
        "object": "organization.usage.completions.result",
        "input_tokens": line.input_tokens,
        "output_tokens": line.output_tokens,
        "input_cached_tokens": line.cached,
        "input_audio_tokens": 0,
        "output_audio_tokens": 0,
        "num_model_requests": line.requests,
        "project_id": line.scope if grouped == "project_id" else None,
        "user_id": None,
        "api_key_id": line.scope if grouped == "api_key_id" else None,
        "model": line.model,
        "batch": None,
        "service_tier": None,
    }


def _openai_cost(line: Line, grouped: str | None) -> dict[str, Any]:
    return {
        "object": "organization.costs.result",
        "amount": {"value": float(line.cost), "currency": "usd"},
        "line_item": None,
        "project_id": line.scope if grouped == "project_id" else None,
    }


def _anthropic_usage(line: Line, grouped: str | None) -> dict[str, Any]:
    return {
        "uncached_input_tokens": line.input_tokens - line.cached,
        "cache_creation": {"ephemeral_1h_input_tokens": 0, "ephemeral_5m_input_tokens": 0},
        "cache_read_input_tokens": line.cached,
        "output_tokens": line.output_tokens,
        "server_tool_use": {"web_search_requests": 0},
        "api_key_id": line.scope if grouped == "api_key_id" else None,
        "workspace_id": line.scope if grouped == "workspace_id" else None,
        "model": line.model,
        "service_tier": "standard",
        "context_window": "0-200k",
        "inference_geo": None,
    }


def _anthropic_cost(line: Line, grouped: str | None) -> dict[str, Any]:
    return {
        "currency": "USD",
        "amount": str(line.cost * 100),  # cents, as a decimal string
        "workspace_id": line.scope if grouped == "workspace_id" else None,
        "description": None,
        "cost_type": None,
        "context_window": None,
        "model": None,
        "service_tier": None,
        "token_type": None,
    }


def serve(api: AdminAPI) -> Generator[AdminAPI, None, None]:
    """Run ``api`` on 127.0.0.1 until the generator is closed (a pytest fixture's body)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            parts = urllib.parse.urlsplit(self.path)
            query = urllib.parse.parse_qs(parts.query)
            api.requests.append((parts.path, query, dict(self.headers.items())))
            if api.fail_with is not None:
                self._answer(api.fail_with, {"error": {"message": "nope", "type": "invalid_request_error"}})
                return
            self._answer(200, api.page(parts.path, query))

        def _answer(self, status: int, body: object) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    api.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield api
    finally:
        server.shutdown()
        server.server_close()
