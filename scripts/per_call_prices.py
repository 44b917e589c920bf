"""How many of genai-prices' per-call prices meterline applies, exactly.

Every per-call price key of the bundled data (web searches, file/storage searches, code
executions, requests; every model, every dated price) is compiled the way the meter prices
events, and a usage of one call of that kind is priced by meterline and by genai-prices
itself. Run: ``.venv/bin/python scripts/per_call_prices.py``.
"""

from __future__ import annotations

from collections import Counter
from decimal import Decimal

from genai_prices import data_snapshot
from genai_prices.types import ModelPrice

from meterline import Usage
from meterline._money import to_usd
from meterline._pricing._plan import compile_price, genai_cost

KEYS = {
    "web_searches_kcount": Usage(web_search_requests=1),
    "storage_searches_kcount": Usage(file_search_requests=1),
    "code_executions_kcount": Usage(code_execution_requests=1),
    "requests_kcount": Usage(),
}


def main() -> None:
    """Print, per price key, how many prices there are and how many meterline applies exactly."""
    found: Counter[str] = Counter()
    applied: Counter[str] = Counter()
    for provider in data_snapshot.get_snapshot().providers:
        for model in provider.models:
            prices = (
                [model.prices] if isinstance(model.prices, ModelPrice) else [c.prices for c in model.prices]
            )
            prices += [variant.prices for variant in model.price_variants or ()]
            for price in prices:
                for key, usage in KEYS.items():
                    value = getattr(price, key, None)
                    if value is None:
                        continue
                    found[key] += 1
                    plan = compile_price(price)  # a price it cannot compile is a slow plan, not an error
                    expected = genai_cost(price, usage) - genai_cost(price, Usage())
                    mine = (
                        to_usd(plan.cost_pico(usage) - plan.const)
                        if key != "requests_kcount"
                        else to_usd(plan.const)
                    )
                    if key == "requests_kcount":
                        expected = value / 1000
                    if plan.exact_for(usage) and Decimal(mine) == expected:
                        applied[key] += 1
    for key in KEYS:
        print(f"{key:26} {applied[key]:4d} of {found[key]:4d} applied exactly")
    print(f"{'all':26} {sum(applied.values()):4d} of {sum(found.values()):4d}")


if __name__ == "__main__":
    main()
