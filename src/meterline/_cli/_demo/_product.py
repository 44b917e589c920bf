"""The simulated product: a research assistant's three organisations, their budgets and its day.

A research assistant serves three organisations. Every session runs three agents (`AGENTS`):
a *planner* (Anthropic Claude with a cached system prompt, or a self-hosted Ollama model that
has no price), a *researcher* (Gemini with thinking) and a *writer* (OpenAI GPT-4o, and
DeepSeek's reasoner for one organisation). Each org's daily spend and each session's tokens
have a budget (`demo_budgets`).
"""

from __future__ import annotations as _annotations

from dataclasses import dataclass
from typing import Final

import meterline

__all__ = [
    "AGENTS",
    "DAY_START",
    "ORGS",
    "RESERVED_OUTPUT",
    "RUNAWAY_OUTPUT",
    "Org",
    "demo_budgets",
]

DAY_START: Final = 1_772_438_400
"""2026-03-02T08:00:00Z: when the simulated day starts (the ``created`` stamps of the bodies)."""
AGENTS: Final = ("planner", "researcher", "writer")
"""The agents every session runs, in order."""
RESERVED_OUTPUT: Final = 2048
"""The ``max_output_tokens`` every simulated call reserves."""
RUNAWAY_OUTPUT: Final = 64_000
"""What the runaway call at the end of the day asks for."""


def demo_budgets() -> list[meterline.Budget]:
    """The budgets the demo enforces: each org's daily spend, and each session's tokens."""
    return [
        meterline.Budget(
            name="org daily spend",
            per=("org",),
            max_cost="1.00",
            window="day",
            alert_at=(0.25, 0.5),
            on_unpriced="fail_open",  # the self-hosted planner has no price: count no cost for it
        ),
        meterline.Budget(name="session tokens", per=("session",), max_tokens=100_000, alert_at=()),
    ]


@dataclass(frozen=True, slots=True)
class Org:
    """One customer organisation: its users, the models its agents use and what it researches."""

    name: str
    """The ``org`` dimension of its events."""
    users: tuple[str, ...]
    """Its users, each with a few sessions a day."""
    planner: str
    """``anthropic`` (Claude with a cached system prompt) or ``ollama`` (self-hosted, unpriced)."""
    researcher: str
    """The Gemini model the researcher thinks with."""
    verifier: bool
    """Whether the writer checks its draft with DeepSeek's reasoner."""
    system_prompt: int
    """Tokens of the planner's (cacheable) system prompt."""
    topics: tuple[str, ...]
    """What its sessions research (a topic researched before is served from the application cache)."""


ORGS: Final = (
    Org(
        "acme",
        ("alice", "bob"),
        planner="anthropic",
        researcher="gemini-2.5-flash",
        verifier=False,
        system_prompt=2_816,
        topics=("supplier contracts", "EU battery regulation", "warehouse robotics"),
    ),
    Org(
        "globex",
        ("carol",),
        planner="anthropic",
        researcher="gemini-2.5-pro",
        verifier=True,
        system_prompt=3_904,
        topics=("bond ladder strategy", "Basel III endgame", "FX hedging costs"),
    ),
    Org(
        "initech",
        ("dave",),
        planner="ollama",
        researcher="gemini-2.5-flash",
        verifier=False,
        system_prompt=1_450,
        topics=("TPS report automation", "legacy COBOL migration"),
    ),
)
"""The organisations, in the order the day serves them."""
