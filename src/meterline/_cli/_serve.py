"""``meterline serve-metrics``: a Prometheus endpoint for processes that have none.

It serves one of two sources, never both (they count the same calls):

- ``--multiproc-dir DIR`` (default ``$PROMETHEUS_MULTIPROC_DIR``): the live counters that
  processes running `PrometheusExporter` in ``prometheus_client``'s multiprocess mode write
  to that directory: pre-fork web workers, task queues, short batch jobs. Their sum over
  every process, dead ones included, as ``prometheus_client`` aggregates it.
- ``--ledger URL``: the same counters computed from a ledger's hourly roll-ups at each
  scrape (`LedgerCollector`): every event stored, whichever process or host recorded it.
"""

from __future__ import annotations as _annotations

import argparse
import os
import sys
import threading
from pathlib import Path
from typing import Any, Final

from meterline._extras import require
from meterline.exceptions import ConfigurationError
from meterline.exporters import LedgerCollector
from meterline.ledger import open_ledger

__all__ = ["add_serve_command"]

MULTIPROC_ENV: Final = "PROMETHEUS_MULTIPROC_DIR"


def _cmd_serve_metrics(args: argparse.Namespace) -> int:
    prometheus = require("prometheus", "prometheus_client")
    directory = args.multiproc_dir or (None if args.ledger else os.environ.get(MULTIPROC_ENV) or None)
    if args.ledger and directory:
        raise ConfigurationError(
            "give --ledger URL or --multiproc-dir DIR, not both: they count the same calls twice"
        )
    registry = prometheus.CollectorRegistry()
    ledger = None
    if args.ledger:
        ledger = open_ledger(args.ledger)
        registry.register(LedgerCollector(ledger))
        what = f"ledger {ledger.url}"
    elif directory:
        if not Path(directory).is_dir():
            raise ConfigurationError(f"--multiproc-dir {directory!r}: expected an existing directory")
        multiprocess = require("prometheus", "prometheus_client.multiprocess")
        multiprocess.MultiProcessCollector(registry, path=directory)
        what = f"multiprocess directory {directory}"
    else:
        raise ConfigurationError(
            f"nothing to serve: give --multiproc-dir DIR (or set ${MULTIPROC_ENV}) or --ledger URL"
        )
    try:
        server, _thread = prometheus.start_http_server(args.port, addr=args.addr, registry=registry)
    except OSError as exc:
        raise ConfigurationError(f"--addr {args.addr} --port {args.port}: cannot listen ({exc})") from exc
    print(
        f"meterline: serving the metrics of {what} on http://{args.addr}:{server.server_port}/metrics",
        file=sys.stderr,
        flush=True,
    )
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.shutdown()
        if ledger is not None:
            ledger.close()
    return 0


def add_serve_command(commands: Any) -> None:
    """Register ``serve-metrics`` on the CLI's sub-parsers."""
    serve = commands.add_parser(
        "serve-metrics",
        help="serve Prometheus metrics of a multiprocess directory or a ledger",
        description=(
            "Expose meterline's Prometheus counters over HTTP for processes that serve none: from a "
            "prometheus_client multiprocess directory (--multiproc-dir, default $PROMETHEUS_MULTIPROC_DIR) "
            "or computed from a ledger's roll-ups (--ledger URL)."
        ),
    )
    serve.add_argument(
        "--port", type=int, default=9464, help="port to listen on (default 9464; 0: any free port)"
    )
    serve.add_argument(
        "--addr",
        default="127.0.0.1",
        help="address to listen on (default 127.0.0.1; 0.0.0.0 for every interface)",
    )
    serve.add_argument(
        "--multiproc-dir", metavar="DIR", help=f"multiprocess directory (default ${MULTIPROC_ENV})"
    )
    serve.add_argument("--ledger", metavar="URL", help="serve counters computed from this ledger instead")
    serve.set_defaults(handler=_cmd_serve_metrics)
