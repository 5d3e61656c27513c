"""Copy table rows out as JSON and back in, exactly: the base of export-user / import-user.

Each row is ``to_jsonb(row)`` (bytea as ``\\x…`` hex, vectors and timestamps as
their text forms) and goes back in through ``jsonb_populate_record``, which
parses the same text forms, so a row comes back bit for bit. Generated columns
(``store.search_text``, ``store_vectors.embedding_half``) are left out on the
way in: Postgres computes them again. Rows that already exist are skipped
(``ON CONFLICT DO NOTHING``) and counted as such.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from psycopg import sql

WRITABLE_COLUMNS_SQL = """
SELECT attname FROM pg_attribute
WHERE attrelid = to_regclass(%s) AND attnum > 0 AND NOT attisdropped AND attgenerated = ''
ORDER BY attnum
"""


def table_exists(conn: Any, table: str) -> bool:
    row = conn.execute("SELECT to_regclass(%s) IS NOT NULL AS e", (table,)).fetchone()
    return bool(row["e"] if isinstance(row, dict) else row[0])


def export_rows(conn: Any, table: str, where: str, params: Sequence[Any]) -> list[dict[str, Any]]:
    """``to_jsonb`` of every row of ``table`` matching ``where`` (SQL with %s placeholders)."""
    if not table_exists(conn, table):
        return []
    query = sql.SQL("SELECT to_jsonb(t) AS row FROM {} AS t WHERE ").format(sql.Identifier(table))
    rows = conn.execute(query + sql.SQL(where), params).fetchall()
    return [row["row"] if isinstance(row, dict) else row[0] for row in rows]


def import_rows(conn: Any, table: str, rows: Sequence[dict[str, Any]]) -> int:
    """Insert exported ``rows`` into ``table``; return how many were new."""
    from psycopg.types.json import Jsonb

    if not rows:
        return 0
    columns = [
        row["attname"] if isinstance(row, dict) else row[0]
        for row in conn.execute(WRITABLE_COLUMNS_SQL, (table,)).fetchall()
    ]
    names = sql.SQL(", ").join(sql.Identifier(column) for column in columns)
    statement = sql.SQL(
        "INSERT INTO {table} ({names}) SELECT {names} FROM jsonb_populate_record(NULL::{table}, %s)"
        " ON CONFLICT DO NOTHING"
    ).format(table=sql.Identifier(table), names=names)
    inserted = 0
    for row in rows:
        inserted += conn.execute(statement, (Jsonb(row),)).rowcount
    return inserted
