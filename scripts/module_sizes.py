"""Lint: no module over 600 lines, unless its docstring says it holds one concept.

A module past 600 lines usually mixes concepts; one that does not (a hot path that must stay
in one function, a facade whose size is its public methods' documentation) says so in its
docstring, with the words "one concept", and why.

Usage: ``python scripts/module_sizes.py src/meterline`` (exits 1 and names each offender).
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

LIMIT = 600
"""The most lines a module may have without saying why."""
MARK = "one concept"
"""What the docstring of a longer module says (case-insensitively)."""


def offenders(root: Path) -> list[str]:
    """Every module under ``root`` over `LIMIT` lines whose docstring lacks `MARK`, with its size."""
    found = []
    for path in sorted(root.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        lines = text.count("\n")
        if lines <= LIMIT:
            continue
        docstring = ast.get_docstring(ast.parse(text)) or ""
        if MARK not in docstring.lower():
            found.append(f"{path}: {lines} lines (over {LIMIT}: split it, or say '{MARK}' and why)")
    return found


def main(argv: list[str]) -> int:
    """Check each root given; 0 when every module passes."""
    problems = [problem for root in argv or ["src"] for problem in offenders(Path(root))]
    for problem in problems:
        print(problem)
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
