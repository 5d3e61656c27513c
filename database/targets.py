"""The three kinds of place Postgres can be, as plain frozen values."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class EmbeddedTarget:
    """An embedded PostgreSQL + pgvector server kept under ``home`` between runs."""

    home: Path
    database: str = "memory_agent"

    def describe(self) -> str:
        return f"embedded PostgreSQL under {self.home}"


@dataclass(frozen=True)
class UrlTarget:
    """Any Postgres 15+ with pgvector, by libpq connection string or URL.

    An empty ``url`` means "use the libpq PG* environment variables".
    """

    url: str
    schema: str | None = None

    def describe(self) -> str:
        return f"Postgres at {redact_url(self.url) or 'the PG* environment variables'}"


@dataclass(frozen=True)
class LakebaseTarget:
    """Databricks Lakebase, reached with OAuth credentials that rotate hourly.

    Provisioned when ``instance_name`` is set; autoscaling when
    ``autoscaling_endpoint`` or ``project`` + ``branch`` is.
    """

    instance_name: str | None = None
    autoscaling_endpoint: str | None = None
    project: str | None = None
    branch: str | None = None
    database: str = "databricks_postgres"
    schema: str | None = None

    @property
    def is_autoscaling(self) -> bool:
        return self.instance_name is None

    def describe(self) -> str:
        if self.instance_name:
            where = f"instance {self.instance_name}"
        elif self.autoscaling_endpoint:
            where = f"autoscaling endpoint {self.autoscaling_endpoint}"
        else:
            where = f"autoscaling project {self.project} branch {self.branch}"
        return f"Lakebase {where}, database {self.database}"


DatabaseTarget = EmbeddedTarget | UrlTarget | LakebaseTarget


# libpq parameters that carry a secret: never shown, in a status page or a log line.
SECRET_CONNECTION_PARAMETERS = ("password", "sslpassword")


def redact_url(url: str) -> str:
    """Hide the password of a postgres URL or key=value connection string."""
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    if not url:
        return url
    try:
        params = conninfo_to_dict(url)
    except Exception:  # an unparsable string is shown as a placeholder, never echoed
        return "<unparsable connection string>"
    for secret in SECRET_CONNECTION_PARAMETERS:
        if params.get(secret):
            params[secret] = "***"
    return make_conninfo("", **{k: v for k, v in params.items() if v is not None})


def with_database(url: str, database: str) -> str:
    """``url`` with its database name replaced by ``database``."""
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    params = conninfo_to_dict(url)
    params["dbname"] = database
    return make_conninfo("", **params)
