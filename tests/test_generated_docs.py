"""The generated documents in docs/ are current, and the diagram shows every table, column and
foreign key of the catalog. A failure names the command that regenerates the file."""

from __future__ import annotations

import json
import re

import psycopg

from encounters_service.docs_gen import OPENAPI_FILE, SCHEMA, SCHEMA_FILE, openapi_json, schema_markdown
from tests.reliability.conftest import OPENAPI


def test_openapi_json_is_current():
    committed = OPENAPI_FILE.read_text(encoding="utf-8") if OPENAPI_FILE.exists() else ""
    assert committed == openapi_json(), "docs/openapi.json is stale: run `make openapi` and commit it"


def test_openapi_json_is_the_served_document():
    assert json.loads(openapi_json()) == OPENAPI


def test_schema_diagram_is_current(template_conninfo):
    committed = SCHEMA_FILE.read_text(encoding="utf-8") if SCHEMA_FILE.exists() else ""
    assert committed == schema_markdown(template_conninfo), (
        "docs/schema.md is stale: run `make schema-diagram` and commit it"
    )


def test_the_diagram_shows_every_table_column_and_foreign_key(template_conninfo):
    diagram = re.search(r"```mermaid\nerDiagram\n(.*?)```", schema_markdown(template_conninfo), re.S).group(1)
    entities = {
        name: [line.split()[1] for line in body.strip().splitlines()]
        for name, body in re.findall(r"^ {4}(\w+) \{\n(.*?)^ {4}\}", diagram, re.S | re.M)
    }
    relationships = re.findall(r'^ {4}(\w+) \S+ (\w+) : "([^"]+)"$', diagram, re.M)
    with psycopg.connect(template_conninfo) as conn:
        columns = conn.execute(
            "SELECT table_name, array_agg(column_name::text ORDER BY ordinal_position) FROM information_schema.columns"
            " WHERE table_schema = %s GROUP BY table_name",
            (SCHEMA,),
        ).fetchall()
        foreign_keys = conn.execute(
            "SELECT p.relname, c.relname, array_to_string(array_agg(a.attname ORDER BY k.ord), ', ')"
            " FROM pg_constraint AS f JOIN pg_class AS c ON c.oid = f.conrelid"
            " JOIN pg_class AS p ON p.oid = f.confrelid"
            " CROSS JOIN unnest(f.conkey) WITH ORDINALITY AS k (attnum, ord)"
            " JOIN pg_attribute AS a ON a.attrelid = f.conrelid AND a.attnum = k.attnum"
            " WHERE f.contype = 'f' AND c.relnamespace = %s::regnamespace GROUP BY f.oid, p.relname, c.relname",
            (SCHEMA,),
        ).fetchall()
    assert entities == dict(columns)
    assert sorted(relationships) == sorted(foreign_keys)
    assert foreign_keys, "the schema has foreign keys: the diagram must draw them"
