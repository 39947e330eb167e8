"""Generated documents kept in docs/, and the functions the staleness tests compare them with:

- docs/openapi.json: the OpenAPI document the service serves at /schema/openapi.json, built from
  the app alone (no database), keys sorted, so a diff shows what a change did to the API;
- docs/schema.md: the tables of schema `encounters` as a Mermaid erDiagram (which GitHub and most
  Markdown viewers draw without any tool), read from the catalog of a database that this
  checkout's migrations have just built, with the catalog's comments on every table and column.

    python -m encounters_service.docs_gen openapi|schema   (make openapi, make schema-diagram)
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from typing import Any

import psycopg

from encounters_service import migrate
from encounters_service.app import create_app
from encounters_service.settings import REPO_ROOT, load_settings

OPENAPI_FILE = REPO_ROOT / "docs" / "openapi.json"
SCHEMA_FILE = REPO_ROOT / "docs" / "schema.md"
SCHEMA = "encounters"


def openapi_json() -> str:
    """The served OpenAPI document, as the text of docs/openapi.json."""
    # The default settings: the package version, not the environment's VERSION. The pool of this
    # app is never opened.
    document = create_app(load_settings({}), "postgresql://unused").openapi_schema.to_schema()
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


# One row per column of each table of the schema, in table then column order. Keys: PK, FK
# (references another table's row), UK (in a unique index other than the primary key's; the list
# under the diagram says which, and whether partial or over several columns).
_COLUMNS = """
SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
       EXISTS (SELECT FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary AND a.attnum = ANY (i.indkey)),
       EXISTS (SELECT FROM pg_constraint f WHERE f.conrelid = c.oid AND f.contype = 'f' AND a.attnum = ANY (f.conkey)),
       EXISTS (SELECT FROM pg_index i WHERE i.indrelid = c.oid AND i.indisunique AND NOT i.indisprimary
               AND a.attnum = ANY (i.indkey)),
       col_description(c.oid, a.attnum), obj_description(c.oid, 'pg_class')
FROM pg_class AS c
JOIN pg_attribute AS a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
WHERE c.relnamespace = %(schema)s::regnamespace AND c.relkind IN ('r', 'p')
ORDER BY c.relname, a.attnum
"""

# One row per foreign key: referencing table, referenced table, the referencing columns, whether
# they are all NOT NULL (a row always has a parent), and whether they are unique (one child at most).
_FOREIGN_KEYS = """
SELECT c.relname, p.relname,
       (SELECT string_agg(a.attname, ', ' ORDER BY k.ord) FROM unnest(f.conkey) WITH ORDINALITY AS k (attnum, ord)
        JOIN pg_attribute AS a ON a.attrelid = f.conrelid AND a.attnum = k.attnum),
       (SELECT bool_and(a.attnotnull) FROM pg_attribute AS a
        WHERE a.attrelid = f.conrelid AND a.attnum = ANY (f.conkey)),
       EXISTS (SELECT FROM pg_index i WHERE i.indrelid = f.conrelid AND i.indisunique AND i.indpred IS NULL
               AND i.indkey::int2[] @> f.conkey AND i.indkey::int2[] <@ f.conkey)
FROM pg_constraint AS f
JOIN pg_class AS c ON c.oid = f.conrelid
JOIN pg_class AS p ON p.oid = f.confrelid
WHERE f.contype = 'f' AND c.relnamespace = %(schema)s::regnamespace
ORDER BY c.relname, f.conname
"""

# Unique indexes other than primary keys (those of UNIQUE constraints too), with their comments.
_UNIQUE = """
SELECT c.relname, x.relname, regexp_replace(pg_get_indexdef(i.indexrelid), '^.* USING [a-z]+ ', ''),
       obj_description(i.indexrelid, 'pg_class')
FROM pg_index AS i
JOIN pg_class AS c ON c.oid = i.indrelid
JOIN pg_class AS x ON x.oid = i.indexrelid
WHERE i.indisunique AND NOT i.indisprimary AND c.relnamespace = %(schema)s::regnamespace
ORDER BY c.relname, x.relname
"""

# Mermaid takes a type as one word: PostgreSQL's own short names for the types spelt in several.
_SHORT_TYPES = {
    "timestamp with time zone": "timestamptz",
    "timestamp without time zone": "timestamp",
    "time with time zone": "timetz",
    "time without time zone": "time",
    "character varying": "varchar",
    "double precision": "float8",
    "bit varying": "varbit",
}


def schema_markdown(conninfo: str) -> str:
    """The text of docs/schema.md, from the catalog of the (migrated) database at `conninfo`."""
    with psycopg.connect(conninfo) as conn:
        columns = conn.execute(_COLUMNS, {"schema": SCHEMA}).fetchall()
        foreign_keys = conn.execute(_FOREIGN_KEYS, {"schema": SCHEMA}).fetchall()
        unique = conn.execute(_UNIQUE, {"schema": SCHEMA}).fetchall()
    tables: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
    comments: dict[str, str | None] = {}
    for table, *column, table_comment in columns:
        tables[table].append(tuple(column))
        comments[table] = table_comment

    lines = [
        f"# Database schema `{SCHEMA}`",
        "",
        "<!-- Generated by `make schema-diagram` (encounters_service/docs_gen.py) from the catalog of a",
        "     database freshly built by migrations/: do not edit; tests/test_generated_docs.py fails when stale. -->",
        "",
        f"The tables of schema `{SCHEMA}` as the migrations leave them. Keys: PK primary key, FK foreign",
        "key, UK in a unique index (see [Unique keys](#unique-keys): some are partial or span several",
        "columns). A relationship line starts at the referenced table; `|o` on it: the foreign key may be null.",
        "",
        "```mermaid",
        "erDiagram",
    ]
    for table, rows in tables.items():
        lines.append(f"    {table} {{")
        for name, sql_type, _, pk, fk, uk, _ in rows:
            keys = ", ".join(_keys(pk, fk, uk))
            lines.append(f"        {_mermaid_type(sql_type)} {name} {keys}".rstrip())
        lines.append("    }")
    for child, parent, fk_columns, not_null, one_child in foreign_keys:
        parent_end, child_end = "||" if not_null else "|o", "o|" if one_child else "o{"
        lines.append(f'    {parent} {parent_end}--{child_end} {child} : "{fk_columns}"')
    lines += ["```", ""]

    for table, rows in tables.items():
        lines += [f"## {table}", "", _one_line(comments[table]) or "(no comment)", ""]
        lines += ["| column | type | nullable | key | meaning |", "| --- | --- | --- | --- | --- |"]
        for name, sql_type, not_null, pk, fk, uk, comment in rows:
            cells = [f"`{name}`", sql_type, "" if not_null else "yes", " ".join(_keys(pk, fk, uk)), _one_line(comment)]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")

    lines += ["## Unique keys", "", "| table | index | columns | meaning |", "| --- | --- | --- | --- |"]
    for table, index, definition, comment in unique:
        lines.append(f"| {table} | `{index}` | `{definition}` | {_one_line(comment)} |")
    return "\n".join(lines).rstrip("\n") + "\n"


def _keys(pk: bool, fk: bool, uk: bool) -> list[str]:
    return [key for key, on in (("PK", pk), ("FK", fk), ("UK", uk)) if on]


def _mermaid_type(sql_type: str) -> str:
    base, bracket, rest = sql_type.partition("(")
    return (_SHORT_TYPES.get(base.strip(), base.strip()) + bracket + rest).replace(" ", "_").replace(",", "_")


def _one_line(text: str | None) -> str:
    """A comment as a Markdown table cell: one line, no unescaped pipe."""
    return " ".join((text or "").split()).replace("|", "\\|")


def migrated_database_markdown() -> str:
    """docs/schema.md from a throwaway PostgreSQL (the system's binaries, as `serve` runs them)
    that this checkout's migrations and functions have just built: never a database in use."""
    with migrate.scratch_database("encounters-schema-") as conninfo:
        return schema_markdown(conninfo)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m encounters_service.docs_gen", description="Write docs/openapi.json or docs/schema.md."
    )
    parser.add_argument("document", choices=["openapi", "schema"])
    args = parser.parse_args(argv)
    path, text = (
        (OPENAPI_FILE, openapi_json()) if args.document == "openapi" else (SCHEMA_FILE, migrated_database_markdown())
    )
    path.write_text(text, encoding="utf-8")
    print(f"wrote {path.relative_to(REPO_ROOT)}")


if __name__ == "__main__":
    main()
