"""The plans PostgreSQL makes for the read query files, as the service runs them: prepared, with
a custom plan (the values known, as on the first five runs of a prepared statement), and the plan
the statement settles on after those five runs (the generic plan, with the values as parameters,
when it does not look costlier than the custom ones)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass

import psycopg
from psycopg import sql

from encounters_service.sqlfiles import load_queries

QUERIES = load_queries()
PLAN_MODES = ("custom", "settled")
ENCOUNTER_TABLES = ("encounter", "location_history", "score_system_history")


@dataclass(frozen=True)
class Scan:
    node: str  # "Seq Scan", "Index Scan", "Bitmap Index Scan", …
    relation: str | None  # the table a scan reads (None for a bitmap index scan)
    index: str | None
    join: str | None  # the join it feeds, if any ("Merge Join", …; through a Hash, Sort or Materialize)


def plan_of(conn: psycopg.Connection, name: str, params: dict, mode: str, analyze: bool = False) -> dict:
    """EXPLAIN (FORMAT JSON) of the query file `name` prepared and executed with `params`:
    mode "custom" on its first run, "settled" after five runs."""
    query = QUERIES[name]
    values = [value if isinstance(value, str) else json.dumps(value) for value in query.arguments(params)]
    literals = sql.SQL(", ").join(sql.Literal(value) for value in values)
    options = "ANALYZE, TIMING OFF, FORMAT JSON" if analyze else "FORMAT JSON"
    conn.execute(f"PREPARE plan_check AS {query.sql}")
    try:
        if mode == "settled":
            for _ in range(5):
                conn.execute(sql.SQL("EXECUTE plan_check ({})").format(literals))
        [(plan,)] = conn.execute(sql.SQL(f"EXPLAIN ({options}) EXECUTE plan_check ({{}})").format(literals)).fetchall()
    finally:
        conn.execute("DEALLOCATE plan_check")
    return (json.loads(plan) if isinstance(plan, str) else plan)[0]


def scans(node: dict, parent: str | None = None) -> Iterator[Scan]:
    """Every scan node of a plan (subplans and CTEs included)."""
    if node["Node Type"].endswith("Scan") and ("Relation Name" in node or "Index Name" in node):
        yield Scan(node["Node Type"], node.get("Relation Name"), node.get("Index Name"), parent)
    kind = node["Node Type"]
    above = kind if kind.endswith("Join") else parent if kind in ("Hash", "Sort", "Materialize") else None
    for child in node.get("Plans", []):
        yield from scans(child, above)


def encounter_scans(plan: dict) -> list[Scan]:
    """The scans that read the encounter tables, or their indexes."""
    found = []
    for scan in scans(plan["Plan"]):
        if scan.relation in ENCOUNTER_TABLES or (scan.index or "").startswith(ENCOUNTER_TABLES):
            found.append(scan)
    return found


def shown(plan: dict) -> str:
    """A plan's scans, one line each, for an assertion message."""
    return "\n".join(f"  {s.node} {s.relation or ''} {s.index or ''} {s.join or ''}" for s in scans(plan["Plan"]))


def function_plans(conn: psycopg.Connection, name: str, params: dict) -> list[dict]:
    """The plans of the statements that functions run while the query file `name` runs with
    `params` (auto_explain's nested statements, sent to this session as notices): what EXPLAIN of
    the query itself does not show, e.g. encounters_api.child_encounter_uuids's recursion."""
    query = QUERIES[name]
    values = [value if isinstance(value, str) else json.dumps(value) for value in query.arguments(params)]
    found: list[dict] = []

    def keep(notice: psycopg.errors.Diagnostic) -> None:
        text = notice.message_primary or ""
        if "plan:" in text:
            plan = json.loads(text.split("plan:", 1)[1])
            if plan.get("Query Text", "").strip() != query.sql.strip():  # the query's own plan: EXPLAIN shows it
                found.append(plan)

    conn.execute("LOAD 'auto_explain'")
    for setting in ("log_min_duration = 0", "log_nested_statements = on", "log_format = json"):
        conn.execute(f"SET auto_explain.{setting}")
    conn.execute("SET client_min_messages = log")
    conn.add_notice_handler(keep)
    try:
        with psycopg.RawCursor(conn) as cursor:  # the file's $n placeholders, as the service runs it
            cursor.execute(query.sql, values)
    finally:
        conn.remove_notice_handler(keep)
        conn.execute("RESET client_min_messages")
        conn.execute("SET auto_explain.log_min_duration = -1")
    return found
