"""Metered spend checked against what the provider says it charged (``meterline reconcile``).

The provider's organisation reports (OpenAI's Usage and Costs APIs, Anthropic's Usage and
Cost Admin API) are read day by day (`_openai`, `_anthropic`, through `_pages`) and lined up
with the ledger's own day lines (`_compare`): the differences are calls one side missed,
tokens that do not add up, and costs apart by more than a provider's rounding.
"""

from __future__ import annotations as _annotations

from meterline._reconcile._anthropic import ADMIN_KEY_VARIABLE as ANTHROPIC_KEY_VARIABLE
from meterline._reconcile._anthropic import BASE_URL as ANTHROPIC_BASE_URL
from meterline._reconcile._compare import COST_TOLERANCE, FETCH, Difference, Reconciliation, reconcile
from meterline._reconcile._lines import CostLine, UsageLine
from meterline._reconcile._openai import ADMIN_KEY_VARIABLE as OPENAI_KEY_VARIABLE
from meterline._reconcile._openai import BASE_URL as OPENAI_BASE_URL

__all__ = [
    "ADMIN_KEYS",
    "BASE_URLS",
    "COST_TOLERANCE",
    "PROVIDERS",
    "CostLine",
    "Difference",
    "Reconciliation",
    "UsageLine",
    "reconcile",
]

PROVIDERS = tuple(FETCH)
"""The providers whose reports can be read."""
ADMIN_KEYS = {"openai": OPENAI_KEY_VARIABLE, "anthropic": ANTHROPIC_KEY_VARIABLE}
"""The environment variable holding each provider's admin key."""
BASE_URLS = {"openai": OPENAI_BASE_URL, "anthropic": ANTHROPIC_BASE_URL}
"""Each provider's API."""
