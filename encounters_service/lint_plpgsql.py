"""plpgsql_check over every PL/pgSQL function of schemas encounters and encounters_api (`make lint`).

The functions are checked where they run: in a throwaway PostgreSQL (the system's binaries, as
`serve` runs them) that this checkout's migrations and sql/functions have just built, so that every
table, type and function they name exists. A trigger function is checked once per table whose
trigger calls it (NEW and OLD take that table's row type). Any finding (error or warning) fails.

    python -m encounters_service.lint_plpgsql      exit 0: no finding; 1: findings; 2: cannot check

It lives in the package beside docs_gen.py, which builds its database the same way.
"""

from __future__ import annotations

import sys
from pathlib import Path

import psycopg

from encounters_service import embedded, migrate

SCHEMAS = ("encounters", "encounters_api")

# Findings looked at and accepted, by (function, table, line, SQLSTATE), each with its reason. A
# change to the function moves or removes its line, and the finding is reported again.
ACCEPTED = {
    ("encounters.touch_encounter_documents()", "encounters.score_system_history", 10, "42846"): (
        "the statement reads location_history rows, in the branch for TG_TABLE_NAME = 'location_history'; "
        "checked against that table it passes"
    ),
}

# Each PL/pgSQL function of SCHEMAS with the table it is checked against: for a trigger function,
# each table whose (user) triggers call it, with the names those triggers give the transition
# tables (REFERENCING NEW/OLD TABLE), which the function's statements read. A trigger function
# that no trigger calls has no row type to be checked with, and is reported as such (relid NULL).
_FUNCTIONS = """
SELECT p.oid, p.oid::regprocedure::text, p.prorettype = 'trigger'::regtype,
       t.tgrelid, t.tgrelid::regclass::text, t.newtable, t.oldtable
FROM pg_proc AS p
JOIN pg_language AS l ON l.oid = p.prolang AND l.lanname = 'plpgsql'
LEFT JOIN LATERAL (
    SELECT tg.tgrelid, max(tg.tgnewtable) AS newtable, max(tg.tgoldtable) AS oldtable
    FROM pg_trigger AS tg
    WHERE tg.tgfoid = p.oid AND NOT tg.tgisinternal
    GROUP BY tg.tgrelid
) AS t ON p.prorettype = 'trigger'::regtype
WHERE p.pronamespace::regnamespace::text = ANY(%(schemas)s)
ORDER BY 2, 5
"""

# Every finding, not only the first (fatal_errors), with the checker's default warning classes.
_CHECK = """
SELECT level, lineno, sqlstate, message, detail, hint, query
FROM plpgsql_check_function_tb(
    %(oid)s, coalesce(%(relid)s, 0), fatal_errors => false, newtable => %(newtable)s, oldtable => %(oldtable)s
)
"""


def missing_extension_message(server_version_num: int) -> str:
    major = server_version_num // 10000
    return (
        f"plpgsql_check is not installed for PostgreSQL {major}: "
        f"apt-get install -y postgresql-{major}-plpgsql-check (Debian/Ubuntu; PGDG for other systems), "
        "then run `make lint` again"
    )


def findings(conninfo: str) -> tuple[int, int, list[str]]:
    """(functions checked, findings accepted, one line per finding that ACCEPTED does not name) on
    the migrated database at `conninfo`.

    Raises LookupError with the install advice when the extension is not available."""
    with psycopg.connect(conninfo, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'plpgsql_check'").fetchone():
            raise LookupError(missing_extension_message(conn.info.server_version))
        conn.execute("CREATE EXTENSION IF NOT EXISTS plpgsql_check")
        functions = conn.execute(_FUNCTIONS, {"schemas": list(SCHEMAS)}).fetchall()
        lines, accepted = [], 0
        for oid, signature, is_trigger, relid, table, newtable, oldtable in functions:
            where = f"{signature} on {table}" if table else signature
            if is_trigger and relid is None:
                lines.append(f"{where}: a trigger function that no trigger calls (not checked)")
                continue
            for level, lineno, sqlstate, message, detail, hint, query in conn.execute(
                _CHECK, {"oid": oid, "relid": relid, "newtable": newtable, "oldtable": oldtable}
            ):
                if (signature, table, lineno, sqlstate) in ACCEPTED:
                    accepted += 1
                    continue
                extra = "".join(f"; {label}: {text}" for label, text in (("detail", detail), ("hint", hint)) if text)
                at = f" in `{' '.join(query.split())}`" if query else ""
                lines.append(f"{where} line {lineno}: {level} {sqlstate}: {message}{extra}{at}")
    return len(functions), accepted, lines


def main() -> int:
    try:
        with migrate.scratch_database("encounters-plpgsql-check-") as conninfo:
            checked, accepted, lines = findings(conninfo)
    except LookupError as missing:
        print(f"lint_plpgsql: {missing}", file=sys.stderr)
        return 2
    except embedded.EmbeddedPostgresError as error:
        print(f"lint_plpgsql: cannot start a PostgreSQL to check with: {error}", file=sys.stderr)
        return 2
    for line in lines:
        print(line)
    print(
        f"plpgsql_check: {checked} functions of {', '.join(SCHEMAS)} checked:"
        f" {len(lines)} findings, {accepted} accepted (ACCEPTED in {Path(__file__).name})"
    )
    return 1 if lines else 0


if __name__ == "__main__":
    sys.exit(main())
