"""Exit statuses of the ``meterline`` command line, and how it reports a user error."""

from __future__ import annotations as _annotations

import sys
from typing import Final

__all__ = ["EXIT_DAMAGED", "EXIT_OK", "EXIT_USAGE", "report_error"]

EXIT_OK: Final = 0
EXIT_DAMAGED: Final = 1
"""Exit status of a check that found something wrong (``meterline ledger check``)."""
EXIT_USAGE: Final = 2
"""Exit status of every user error (argparse uses it for bad arguments too)."""


def report_error(message: str) -> int:
    """Print ``message`` on stderr as ``meterline: error: …``.

    Args:
        message: What went wrong, naming the offending value and what was expected.

    Returns:
        `EXIT_USAGE`, for the command to return.
    """
    print(f"meterline: error: {message}", file=sys.stderr)
    return EXIT_USAGE
