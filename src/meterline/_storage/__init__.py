"""One SQL layer under the ledger and the budget stores.

SQLite files and PostgreSQL servers: connections, forward migrations and the schema version,
transactions, URLs without passwords, and the one mapping of driver errors to meterline's
errors. Nothing here knows what a ledger or a budget is.
"""

from __future__ import annotations as _annotations

from meterline._storage._deadline import Deadline, check_bound, deadline
from meterline._storage._errors import driver_errors, is_lost_race, is_value_error, mapped
from meterline._storage._postgres import (
    META_QUERIES,
    postgres_migrate,
    postgres_options,
    postgres_rollback,
    postgres_schema_version,
)
from meterline._storage._sqlite import (
    begin_polling,
    check_timeout,
    sqlite_connect,
    sqlite_migrate,
    sqlite_rollback,
    sqlite_schema_version,
    sqlite_transaction,
)
from meterline._storage._urls import (
    SECRET_KEYS,
    check_url,
    is_conninfo,
    postgres_driver_url,
    postgres_public_url,
    redact,
    scrub,
    secrets_in,
)

__all__ = [
    "META_QUERIES",
    "SECRET_KEYS",
    "Deadline",
    "begin_polling",
    "check_bound",
    "check_timeout",
    "check_url",
    "deadline",
    "driver_errors",
    "is_conninfo",
    "is_lost_race",
    "is_value_error",
    "mapped",
    "postgres_driver_url",
    "postgres_migrate",
    "postgres_options",
    "postgres_public_url",
    "postgres_rollback",
    "postgres_schema_version",
    "redact",
    "scrub",
    "secrets_in",
    "sqlite_connect",
    "sqlite_migrate",
    "sqlite_rollback",
    "sqlite_schema_version",
    "sqlite_transaction",
]
