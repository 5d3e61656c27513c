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


AUTHENTICATION_SQLSTATES = frozenset({"28000", "28P01"})
"""invalid_authorization_specification, invalid_password."""


def is_auth_failure(exc: BaseException) -> bool:
    """True when the server rejected who we are (a session-level 28000/28P01)."""
    return isinstance(exc, psycopg.Error) and getattr(exc, "sqlstate", None) in (
        AUTHENTICATION_SQLSTATES
    )


def is_credential_refused(exc: BaseException) -> bool:
    """True when a connection attempt failed after the server demanded a password.

    libpq reports no SQLSTATE for a failed login (psycopg's ``sqlstate`` is
    None), but it does record that the server asked for a password
    (``PQconnectionUsedPassword``); a login that then fails means the password,
    here the OAuth token, was not accepted. (A missing database also fails after
    the password step; treating it as refused costs one extra token, and the
    retry then reports the real reason.)
    """
    if is_auth_failure(exc):
        return True
    if not isinstance(exc, psycopg.OperationalError):
        return False
    pgconn = getattr(exc, "pgconn", None)
    return bool(pgconn is not None and getattr(pgconn, "used_password", False))


def is_missing_table(exc: BaseException) -> bool:
    """True when a statement failed because a table or schema does not exist."""
    return isinstance(exc, pg_errors.UndefinedTable | pg_errors.InvalidSchemaName)
