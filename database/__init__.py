"""Where Postgres is and how we reach it: one connection pool per process.

Three kinds of target (Lakebase, a connection URL, an embedded server) are
opened by ``open_database`` / ``aopen_database`` into a ``Database`` whose
pool every other package shares. Nothing here reads environment variables:
callers pass a target built from settings.
"""

from database.connect import Database, aopen_database, open_database
from database.errors import DatabaseUnavailable, is_connection_error, is_missing_table
from database.targets import DatabaseTarget, EmbeddedTarget, LakebaseTarget, UrlTarget

__all__ = [
    "Database",
    "DatabaseTarget",
    "DatabaseUnavailable",
    "EmbeddedTarget",
    "LakebaseTarget",
    "UrlTarget",
    "aopen_database",
    "is_connection_error",
    "is_missing_table",
    "open_database",
]
