"""``python -m meterline``: the command line (see `meterline._cli`)."""

from __future__ import annotations as _annotations

import sys

from meterline._cli import main

if __name__ == "__main__":
    sys.exit(main())
