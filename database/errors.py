"""Classify database failures by exception type and SQLSTATE, never by message text."""

from __future__ import annotations

import psycopg
from psycopg import errors as pg_errors
from psycopg_pool import PoolTimeout


class DatabaseUnavailable(RuntimeError):
    """The configured database cannot be used; ``str()`` is one line that names the fix."""


def is_connection_error(exc: BaseException) -> bool:
    """True when ``exc`` means the server could not be reached or the link dropped."""
    if isinstance(exc, PoolTimeout | DatabaseUnavailable):
        return True
    if isinstance(exc, psycopg.OperationalError):
        # OperationalError also covers e.g. query cancellation; those carry a SQLSTATE
        # of another class. Connection failures have none (client side) or class 08/57P.
        sqlstate = getattr(exc, "sqlstate", None)
        return sqlstate is None or sqlstate.startswith(("08", "57P", "28"))
    return isinstance(exc, psycopg.InterfaceError)


def is_missing_table(exc: BaseException) -> bool:
    """True when a statement failed because a table or schema does not exist."""
    return isinstance(exc, pg_errors.UndefinedTable | pg_errors.InvalidSchemaName)
