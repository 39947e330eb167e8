"""What a long location history costs: a move (PATCH location_uuid) and a full answer, by history length.

    .venv/bin/python bench/history_growth.py [--database-url URL] [--lengths 10,1000] [--moves 50]

In a scratch database `encounters_history_growth` (on the server of --database-url, else on a
throwaway local PostgreSQL), migrated: for each length L, one encounter with L location history
rows (written in one INSERT, through the document triggers), then --moves moves of it, each the
statement the service runs for PATCH /dhos/v1/encounter/{id} (writes.update_encounter, prepared,
one connection, autocommit), and as many reads by id (writes.get_encounter). Prints per length the
median time of a move and of a read, and the size of the full answer; with a server on this
machine also the CPU time the server's backend spent on a move (/proc/<pid>/schedstat), which a
busy machine disturbs much less than the wall-clock time. Not part of the test suite:
tests/reliability/test_history_growth.py checks the shape (rows a move reads) instead of time.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
import uuid
from contextlib import ExitStack
from pathlib import Path

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from encounters_service import migrate
from encounters_service.db import connect_sync, run_sync
from encounters_service.embedded import start_local_postgres
from encounters_service.sqlfiles import load_queries

SCRATCH = "encounters_history_growth"
QUERIES = load_queries()


def encounter_with_history(conn: psycopg.Connection, length: int) -> str:
    """A new open encounter whose location history already holds `length` stays, one a minute."""
    [(created, _version)] = run_sync(
        conn,
        QUERIES["writes.create_encounter"],
        body=json.dumps(
            {
                "patient_uuid": str(uuid.uuid4()),
                "location_uuid": str(uuid.uuid4()),
                "patient_record_uuid": str(uuid.uuid4()),
                "dh_product_uuid": str(uuid.uuid4()),
                "admitted_at": "2026-01-01T00:00:00Z",
                "score_system": "news2",
            }
        ),
        caller="bench",
        can_edit_ews=False,
    )
    encounter = json.loads(created)["uuid"]
    conn.execute(
        "INSERT INTO encounters.location_history (encounter_uuid, location_uuid, arrived_at, departed_at, created_by)"
        " SELECT %s, gen_random_uuid(), '2026-01-01'::timestamptz + (i - 1) * interval '1 minute',"
        " '2026-01-01'::timestamptz + i * interval '1 minute', 'bench'"
        " FROM generate_series(1, %s) AS i",
        [encounter, length],
    )
    return encounter


def backend_cpu_ns(pid: int) -> int | None:
    """CPU time a server process has used so far, if it runs on this machine (Linux)."""
    try:
        return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def median_ms(run, times: int, pid: int) -> tuple[float, float | None]:
    """Median wall-clock and backend CPU milliseconds of `run`."""
    durations, cpu = [], []
    for _ in range(times):
        cpu_before, started = backend_cpu_ns(pid), time.perf_counter()
        run()
        durations.append((time.perf_counter() - started) * 1000)
        cpu_after = backend_cpu_ns(pid)
        if cpu_before is not None and cpu_after is not None:
            cpu.append((cpu_after - cpu_before) / 1e6)
    return statistics.median(durations), statistics.median(cpu) if cpu else None


def measure(conninfo: str, lengths: list[int], moves: int) -> list[tuple[int, float, float | None, float, int]]:
    rows = []
    with connect_sync(conninfo, autocommit=True, prepare_threshold=0) as conn:
        conn.execute("VACUUM ANALYZE")
        [(pid,)] = conn.execute("SELECT pg_backend_pid()").fetchall()
        for length in lengths:
            encounter = encounter_with_history(conn, length)

            # Both closures are timed here, within this iteration (so `encounter` is this one's).
            def move() -> None:
                body = json.dumps({"location_uuid": str(uuid.uuid4())})
                run_sync(conn, QUERIES["writes.update_encounter"], encounter_id=encounter, body=body, caller="bench",  # noqa: B023
                         can_edit_ews=False, if_match=[])  # fmt: skip

            def read() -> list[tuple]:
                return run_sync(conn, QUERIES["writes.get_encounter"], encounter_id=encounter, show_deleted=False)  # noqa: B023

            move_ms, move_cpu_ms = median_ms(move, moves, pid)
            read_ms, _ = median_ms(read, moves, pid)
            [(answer, _version)] = read()
            rows.append((length, move_ms, move_cpu_ms, read_ms, len(answer.encode())))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", help="PostgreSQL server for the scratch database (default: a local one)")
    parser.add_argument("--lengths", default="10,1000", help="comma-separated history lengths")
    parser.add_argument("--moves", type=int, default=50, help="moves (and reads) timed per length")
    args = parser.parse_args()
    with ExitStack() as stack:
        server = args.database_url
        if server is None:
            data_dir = Path(tempfile.mkdtemp(prefix="encounters-bench-pg-"))
            stack.callback(shutil.rmtree, data_dir, ignore_errors=True)
            server = make_conninfo(stack.enter_context(start_local_postgres(data_dir)).conninfo, dbname="postgres")
        else:
            server = make_conninfo(server, dbname=conninfo_to_dict(server).get("dbname", "postgres"))
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {SCRATCH} WITH (FORCE)")
            conn.execute(f"CREATE DATABASE {SCRATCH}")
        conninfo = make_conninfo(server, dbname=SCRATCH)
        migrate.upgrade(conninfo)
        rows = measure(conninfo, [int(n) for n in args.lengths.split(",")], args.moves)
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE {SCRATCH} WITH (FORCE)")
    print(
        f"{'history rows':>12}  {'move (PATCH) ms':>15}  {'move CPU ms':>11}  {'read by id ms':>13}  {'answer KB':>9}"
    )
    for length, move_ms, move_cpu_ms, read_ms, size in rows:
        cpu = "-" if move_cpu_ms is None else f"{move_cpu_ms:.2f}"
        print(f"{length:>12,}  {move_ms:>15.2f}  {cpu:>11}  {read_ms:>13.2f}  {size / 1000:>9.1f}")


if __name__ == "__main__":
    main()
