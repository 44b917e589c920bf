"""Specification of `meterline._cli._demo`: the simulated day behind ``meterline demo``."""

SEEDS = [1, 7, 42, 2026]
"""The seeds that the tests which hold for every simulated day run on."""
