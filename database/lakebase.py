"""Lakebase pools with rotating OAuth credentials (databricks-ai-bridge LakebasePool).

LakebasePool resolves the instance or autoscaling endpoint to a host, infers
the Postgres user from the workspace identity and mints a fresh token for
every new connection. We add the pool settings the design needs: connections
recycled well before the one-hour token expiry and checked before use.
"""

from __future__ import annotations

from typing import Any

from database.errors import DatabaseUnavailable
from database.targets import LakebaseTarget


def _pool_kwargs(min_size: int, max_size: int) -> dict[str, Any]:
    from database.connect import MAX_CONNECTION_LIFETIME_SECONDS, MAX_IDLE_SECONDS

    return {
        "min_size": min_size,
        "max_size": max_size,
        "max_lifetime": MAX_CONNECTION_LIFETIME_SECONDS,
        "max_idle": MAX_IDLE_SECONDS,
    }


def _target_kwargs(target: LakebaseTarget) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"schema": target.schema}
    if target.instance_name:
        kwargs["instance_name"] = target.instance_name
    elif target.autoscaling_endpoint:
        kwargs["autoscaling_endpoint"] = target.autoscaling_endpoint
    else:
        kwargs["project"] = target.project
        kwargs["branch"] = target.branch
    return kwargs


def open_lakebase_pool(
    target: LakebaseTarget, *, workspace_client: Any = None, min_size: int = 1, max_size: int = 10
) -> Any:
    """Open a sync psycopg pool on Lakebase; raises ``DatabaseUnavailable`` on failure."""
    from databricks_ai_bridge.lakebase import LakebasePool
    from psycopg_pool import ConnectionPool

    try:
        lakebase = LakebasePool(
            workspace_client=workspace_client,
            check=ConnectionPool.check_connection,
            **_target_kwargs(target),
            **_pool_kwargs(min_size, max_size),
        )
    except Exception as exc:  # SDK and resolution errors come in many types
        raise DatabaseUnavailable(f"cannot open {target.describe()}: {exc}") from exc
    return lakebase.pool


async def aopen_lakebase_pool(
    target: LakebaseTarget, *, workspace_client: Any = None, min_size: int = 1, max_size: int = 10
) -> Any:
    """Open an async psycopg pool on Lakebase; raises ``DatabaseUnavailable`` on failure."""
    from databricks_ai_bridge.lakebase import AsyncLakebasePool
    from psycopg_pool import AsyncConnectionPool

    try:
        lakebase = AsyncLakebasePool(
            workspace_client=workspace_client,
            check=AsyncConnectionPool.check_connection,
            **_target_kwargs(target),
            **_pool_kwargs(min_size, max_size),
        )
        await lakebase.open()
    except Exception as exc:
        raise DatabaseUnavailable(f"cannot open {target.describe()}: {exc}") from exc
    return lakebase.pool
