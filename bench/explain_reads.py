"""EXPLAIN (ANALYZE, BUFFERS) of the census reads on a large encounters table.

    .venv/bin/python bench/explain_reads.py [--database-url URL] [--encounters 1000000]

Creates a scratch database `encounters_explain` (on the server of --database-url, else on a
throwaway local PostgreSQL), migrates it, seeds it with bench/seed_encounters.sql (one
INSERT … SELECT generate_series), ANALYZEs, and prints the plan of each query file the service
runs for the locations, patient count and latest routes, with realistic parameters (each query
runs once before its EXPLAIN, so the timings are for a warm cache). Not part of the test suite:
seeding a million rows takes about half a minute. bench/bench.py runs the whole benchmark.
"""

from __future__ import annotations

import argparse
import re
import shutil
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import psycopg
from psycopg import RawCursor
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from bench import seed, stop_cleanly_on_sigterm  # bench/bench.py (this script's directory is on sys.path)
from encounters_service import migrate
from encounters_service.db import connect_sync
from encounters_service.embedded import start_local_postgres
from encounters_service.sqlfiles import load_queries

SCRATCH = "encounters_explain"
UUID_ARRAY = re.compile(r"'\{([0-9a-f-]{36})(?:,[0-9a-f-]{36})*\}'")


def shorten(plan_line: str) -> str:
    """A plan line with each literal uuid array cut to its first element and its size."""
    return UUID_ARRAY.sub(lambda m: f"'{{{m.group(1)},… {m.group(0).count(',') + 1} uuids}}'", plan_line)


def scratch_database(server_conninfo: str) -> str:
    with psycopg.connect(server_conninfo, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {SCRATCH} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {SCRATCH}")
    return make_conninfo(server_conninfo, dbname=SCRATCH)


def sample_ids(conn: psycopg.Connection, column: str, how_many: int) -> list:
    """`how_many` distinct values of an encounter column, spread over the table."""
    rows = conn.execute(
        f"SELECT DISTINCT {column} FROM encounters.encounter TABLESAMPLE SYSTEM (1) LIMIT %s", [how_many]
    ).fetchall()
    return [value for (value,) in rows]


def explain(conn: psycopg.Connection, name: str, params: dict) -> None:
    query = load_queries()[name]
    with RawCursor(conn) as cursor:
        cursor.execute(query.sql, query.arguments(params))  # warm the cache: the plan shows a steady state
        cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + query.sql, query.arguments(params))
        plan = [shorten(line) for (line,) in cursor.fetchall()]
    shown = {key: (f"{len(value)} ids" if isinstance(value, list) else value) for key, value in params.items()}
    print(f"\n=== {name} {shown}")
    print("\n".join(plan))


def main() -> None:
    stop_cleanly_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", help="server to create the scratch database on")
    parser.add_argument("--encounters", type=int, default=1_000_000)
    args = parser.parse_args()

    with ExitStack() as stack:
        server = args.database_url
        if server is None:
            data_dir = Path(tempfile.mkdtemp(prefix="explain-reads-"))
            stack.callback(shutil.rmtree, data_dir, ignore_errors=True)
            local = stack.enter_context(start_local_postgres(data_dir))
            server = make_conninfo(local.conninfo, dbname="postgres")
        conninfo = scratch_database(make_conninfo(server, dbname=conninfo_to_dict(server).get("dbname", "postgres")))
        migrate.upgrade(conninfo)
        conn = stack.enter_context(connect_sync(conninfo, autocommit=True))

        started = time.perf_counter()
        scale = dict(patients=args.encounters * 3 // 10, locations=5_000, open_encounters=12_500, mixed=True)
        count = seed(conninfo, encounters=args.encounters, **scale)
        print(f"seeded {count} encounters in {time.perf_counter() - started:.1f} s (with VACUUM ANALYZE)")

        locations = sample_ids(conn, "location_uuid", 20)
        patients = sample_ids(conn, "patient_uuid", 1000)
        for name, params in (
            ("open_at_locations", dict(location_ids=locations, open_as_of="infinity", compact=False)),
            ("open_at_locations", dict(location_ids=locations, open_as_of="2018-06-01T00:00Z", compact=True)),
            ("patient_count_per_location", dict(location_ids=locations, open_as_of="infinity")),
            ("latest", dict(patient_id=patients[0], open_as_of="-infinity", compact=False)),
            ("latest_per_patient", dict(patient_ids=patients, open_as_of="-infinity", compact=False)),
            ("open_for_patients", dict(patient_ids=patients, open_as_of="infinity", compact=True)),
        ):
            explain(conn, f"encounters.{name}", params)


if __name__ == "__main__":
    main()
