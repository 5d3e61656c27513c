"""Exactly the privileges the agent's role needs, as a plan of missing GRANTs and a list of gaps.

The agent reads and writes its own tables and nothing else, so its role gets:

- CONNECT on the database and USAGE on the agent's schema (and on the schema
  holding the ``vector`` type, when that is another one);
- SELECT, INSERT, UPDATE, DELETE on each agent table, named one by one, never
  ``ALL TABLES IN SCHEMA`` (the schema may hold other applications' tables);
- USAGE, SELECT on sequences owned by those tables (none today; a future
  migration with a serial column would need it);
- default privileges, so tables and sequences the setup role creates later in
  the schema (a LangGraph migration adding one) are granted the same without a
  new ``--grant``.

Not CREATE on the schema: the agent never runs DDL in production; tables are
created by ``setup_lakebase.py`` as their owner. CREATE would let the app's
identity add tables and (as their owner) keep privileges we cannot see from
here. An app that runs with ``AUTO_SETUP=1`` migrates at start and does need
it; ``--check`` then reports the missing CREATE as the reason, not silently.
The role never owns the tables, so it cannot DROP or ALTER them.

Everything here inspects the catalog first and plans only what is missing, so
running the grant step twice changes nothing the second time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from psycopg import sql

TABLE_PRIVILEGES = ("SELECT", "INSERT", "UPDATE", "DELETE")
EXCESS_TABLE_PRIVILEGES = ("TRUNCATE", "REFERENCES", "TRIGGER")
SEQUENCE_PRIVILEGES = ("USAGE", "SELECT")


@dataclass(frozen=True)
class Step:
    """One SQL statement of a plan, with what it is for."""

    purpose: str
    statement: sql.Composable

    def render(self, conn: Any = None) -> str:
        return self.statement.as_string(conn)


@dataclass(frozen=True)
class Gap:
    """Something the role lacks (or has beyond need); ``fix`` is what to run."""

    problem: str
    fix: str
    blocking: bool = True


def role_exists(conn: Any, role: str) -> bool:
    return conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone() is not None


def is_lakebase(conn: Any) -> bool:
    """Lakebase ships the databricks_auth extension; plain Postgres does not."""
    row = conn.execute(
        "SELECT 1 FROM pg_available_extensions WHERE name = 'databricks_auth'"
    ).fetchone()
    return row is not None


def plan_lakebase_role(conn: Any, role: str, identity_type: str) -> list[Step]:
    """Steps creating the Postgres role of a Databricks identity (empty when it exists)."""
    if role_exists(conn, role):
        return []
    return [
        Step(
            "databricks_auth extension (Lakebase role management)",
            sql.SQL("CREATE EXTENSION IF NOT EXISTS databricks_auth"),
        ),
        Step(
            f"Postgres role for the {identity_type.lower().replace('_', ' ')} {role}",
            sql.SQL("SELECT databricks_create_role({}, {})").format(
                sql.Literal(role), sql.Literal(identity_type)
            ),
        ),
    ]


def _schema_exists(conn: Any, schema: str) -> bool:
    row = conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,)).fetchone()
    return row is not None


def _schema_of_vector(conn: Any) -> str | None:
    row = conn.execute(
        "SELECT n.nspname AS schema FROM pg_extension e "
        "JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'vector'"
    ).fetchone()
    return row["schema"] if row else None


def _existing(conn: Any, schema: str, tables: Sequence[str]) -> list[str]:
    rows = conn.execute(
        "SELECT c.relname AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %s AND c.relname = ANY(%s) AND c.relkind IN ('r', 'p')",
        (schema, list(tables)),
    ).fetchall()
    present = {row["name"] for row in rows}
    return [table for table in tables if table in present]


def _owned_sequences(conn: Any, schema: str, tables: Sequence[str]) -> list[str]:
    rows = conn.execute(
        """
        SELECT DISTINCT s.relname AS name
        FROM pg_class s
        JOIN pg_depend d ON d.objid = s.oid AND d.classid = 'pg_class'::regclass
                         AND d.refclassid = 'pg_class'::regclass
        JOIN pg_class t ON t.oid = d.refobjid
        JOIN pg_namespace n ON n.oid = t.relnamespace
        WHERE s.relkind = 'S' AND n.nspname = %s AND t.relname = ANY(%s)
        """,
        (schema, list(tables)),
    ).fetchall()
    return sorted(row["name"] for row in rows)


def _has(conn: Any, function: str, role: str, obj: str, privilege: str) -> bool:
    query = sql.SQL("SELECT {}(%s, %s, %s) AS ok").format(sql.Identifier(function))
    return bool(conn.execute(query, (role, obj, privilege)).fetchone()["ok"])


def _qualified(schema: str, name: str) -> str:
    return sql.Identifier(schema, name).as_string(None)


def _default_privileges(conn: Any, owner: str, schema: str, role: str, kind: str) -> set[str]:
    """Privileges ``owner``'s future objects of ``kind`` ('r' tables, 'S' sequences) give ``role``."""
    rows = conn.execute(
        """
        SELECT acl.privilege_type AS privilege
        FROM pg_default_acl d
        JOIN pg_namespace n ON n.oid = d.defaclnamespace
        CROSS JOIN LATERAL aclexplode(d.defaclacl) AS acl
        WHERE d.defaclrole = (SELECT oid FROM pg_roles WHERE rolname = %s)
          AND n.nspname = %s AND d.defaclobjtype = %s
          AND acl.grantee = (SELECT oid FROM pg_roles WHERE rolname = %s)
        """,
        (owner, schema, kind, role),
    ).fetchall()
    return {row["privilege"] for row in rows}


def _table_owner(conn: Any, schema: str, tables: Sequence[str]) -> str:
    for table in _existing(conn, schema, tables):
        row = conn.execute(
            "SELECT pg_get_userbyid(c.relowner) AS owner FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relname = %s",
            (schema, table),
        ).fetchone()
        return str(row["owner"])
    return str(conn.execute("SELECT current_user AS me").fetchone()["me"])


def _grant_on(
    kind: str, schema: str, name: str, privileges: Sequence[str], role: str, purpose: str
) -> Step:
    return Step(
        purpose,
        sql.SQL("GRANT {} ON {} {} TO {}").format(
            sql.SQL(", ").join(sql.SQL(p) for p in privileges),
            sql.SQL(kind),
            sql.Identifier(schema, name),
            sql.Identifier(role),
        ),
    )


def _needs(conn: Any, role: str, schema: str, tables: Sequence[str]) -> list[tuple[str, Step]]:
    """(problem, step) for every privilege ``role`` is missing.

    A role that does not exist yet (a dry run before ``--grant`` creates it)
    is judged as it will start: with only what PUBLIC has.
    """
    role_id = sql.Identifier(role)
    exists = role_exists(conn, role)
    subject = role if exists else "public"
    needs: list[tuple[str, Step]] = []
    database = conn.execute("SELECT current_database() AS db").fetchone()["db"]
    if not _has(conn, "has_database_privilege", subject, database, "CONNECT"):
        needs.append(
            (
                f"cannot CONNECT to database {database}",
                Step(
                    "connect to the database",
                    sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(
                        sql.Identifier(database), role_id
                    ),
                ),
            )
        )
    schemas = [schema]
    vector_schema = _schema_of_vector(conn)
    if vector_schema and vector_schema != schema:
        schemas.append(vector_schema)
    for name in schemas:
        # A schema setup has yet to create (dry run) cannot be asked about; it will need it.
        if not _schema_exists(conn, name) or not _has(
            conn, "has_schema_privilege", subject, name, "USAGE"
        ):
            needs.append(
                (
                    f"no USAGE on schema {name}",
                    Step(
                        f"use schema {name}",
                        sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(
                            sql.Identifier(name), role_id
                        ),
                    ),
                )
            )
    present = _existing(conn, schema, tables)
    for table in tables:
        qualified = _qualified(schema, table)
        missing = (
            list(TABLE_PRIVILEGES)
            if table not in present
            else [
                p
                for p in TABLE_PRIVILEGES
                if not _has(conn, "has_table_privilege", subject, qualified, p)
            ]
        )
        if missing:
            needs.append(
                (
                    f"lacks {', '.join(missing)} on {qualified}",
                    _grant_on("TABLE", schema, table, missing, role, f"read and write {table}"),
                )
            )
    for sequence in _owned_sequences(conn, schema, present):
        qualified = _qualified(schema, sequence)
        missing = [
            p
            for p in SEQUENCE_PRIVILEGES
            if not _has(conn, "has_sequence_privilege", subject, qualified, p)
        ]
        if missing:
            needs.append(
                (
                    f"lacks {', '.join(missing)} on sequence {qualified}",
                    _grant_on("SEQUENCE", schema, sequence, missing, role, f"use {sequence}"),
                )
            )
    owner = _table_owner(conn, schema, tables)
    if owner == role:
        return needs  # an owner has every privilege on what it creates, now and later
    for kind, noun, wanted in (
        ("r", "TABLES", TABLE_PRIVILEGES),
        ("S", "SEQUENCES", SEQUENCE_PRIVILEGES),
    ):
        granted = _default_privileges(conn, owner, schema, role, kind) if exists else set()
        missing = [p for p in wanted if p not in granted]
        if missing:
            needs.append(
                (
                    f"no default {', '.join(missing)} on {noun.lower()} {owner} creates later "
                    f"in {schema}",
                    Step(
                        f"future {noun.lower()} in {schema}",
                        sql.SQL(
                            "ALTER DEFAULT PRIVILEGES FOR ROLE {} IN SCHEMA {} GRANT {} ON {} TO {}"
                        ).format(
                            sql.Identifier(owner),
                            sql.Identifier(schema),
                            sql.SQL(", ").join(sql.SQL(p) for p in missing),
                            sql.SQL(noun),
                            role_id,
                        ),
                    ),
                )
            )
    return needs


def plan_grants(conn: Any, role: str, schema: str, tables: Sequence[str]) -> list[Step]:
    """The GRANTs still missing for ``role`` (for a role not created yet: all it will need)."""
    return [step for _, step in _needs(conn, role, schema, tables)]


def find_gaps(conn: Any, role: str, schema: str, tables: Sequence[str]) -> list[Gap]:
    """What ``role`` lacks to run the agent, each with the statement that fixes it,
    plus (non-blocking) privileges it has beyond what the agent needs."""
    if not role_exists(conn, role):
        return [Gap(f"role {role} does not exist", f"python setup_lakebase.py --grant {role}")]
    gaps = [
        Gap(f"role {role} {problem}", step.render(conn))
        for problem, step in _needs(conn, role, schema, tables)
    ]
    role_id = sql.Identifier(role)
    if _table_owner(conn, schema, tables) == role:
        gaps.append(
            Gap(
                f"role {role} owns the agent's tables, so it can also DROP and ALTER them",
                "run the app as another identity, granted with "
                "`python setup_lakebase.py --grant <its id>`",
                blocking=False,
            )
        )
        return gaps
    if _schema_exists(conn, schema) and _has(conn, "has_schema_privilege", role, schema, "CREATE"):
        gaps.append(
            Gap(
                f"role {role} can CREATE in schema {schema} (only needed with AUTO_SETUP=1)",
                sql.SQL("REVOKE CREATE ON SCHEMA {} FROM {}")
                .format(sql.Identifier(schema), role_id)
                .as_string(conn),
                blocking=False,
            )
        )
    for table in _existing(conn, schema, tables):
        qualified = _qualified(schema, table)
        extra = [
            p
            for p in EXCESS_TABLE_PRIVILEGES
            if _has(conn, "has_table_privilege", role, qualified, p)
        ]
        if extra:
            gaps.append(
                Gap(
                    f"role {role} has {', '.join(extra)} on {qualified}, beyond what the agent needs",
                    sql.SQL("REVOKE {} ON TABLE {} FROM {}")
                    .format(
                        sql.SQL(", ").join(sql.SQL(p) for p in extra),
                        sql.Identifier(schema, table),
                        role_id,
                    )
                    .as_string(conn),
                    blocking=False,
                )
            )
    return gaps
