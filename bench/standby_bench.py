"""The census on a hot standby vs the primary, CPU per census call, WAL and synchronous commit per write.

    make bench          # after bench/bench.py; or: .venv/bin/python bench/standby_bench.py [--quick]

On a throwaway local PostgreSQL with its default, durable settings (fsync on; the primary) and a
streaming hot standby of it (encounters_service.embedded.start_local_standby: pg_basebackup -R
from the same binaries, its own slot, hot_standby_feedback), both on this machine's disk: the
census dataset of bench/bench.py (5,000 open encounters at 2,000 locations), seeded on the
primary and replayed by the standby. Then, with the service started once with DATABASE_READ_URL
naming the standby and once without (bench.py's `service` and `measure`):
1. the census calls (POST /dhos/v1/encounter/locations, the hospital's 2,000 locations and a
   ward's 12), on the standby and on the primary: the SQL floor on that server, p50/p99 with one
   wrk connection, requests/s with --connections; that the standby served them is read from the
   service's own metric (encounters_db_reads_total by served_by);
2. CPU per census call: the CPU time (utime + stime, /proc/<pid>/stat) of the service's
   processes and of the server's (the postmaster and all its children: the backends, the WAL
   receiver and the startup process replaying it) over a wrk run of N calls, divided by N;
3. per write (create, PATCH of the location), with one wrk connection: WAL bytes (the
   primary's pg_current_wal_lsn before and after, over the writes), and p50 without and with
   synchronous_standby_names naming the standby (synchronous_commit=on: a commit waits until the
   standby has flushed it);
4. from these, the capacity table of README "Deploying beyond one machine" (`capacity`).
"""

from __future__ import annotations

import argparse
import math
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
import urllib.request
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from bench import (
    CENSUS,
    HS_KEY,
    SERVE,
    Options,
    Result,
    Route,
    free_port,
    lua_script,
    measure,
    process_tree,
    routes,
    scratch_database,
    service,
    stop_cleanly_on_sigterm,
    table,
    wrk,
)
from encounters_service.auth import READ_SCOPE, WRITE_SCOPE, mint_token
from encounters_service.cli import DEFAULT_WORKERS
from encounters_service.db import connect_sync, session_options
from encounters_service.embedded import start_local_postgres, start_local_standby, wait_until_replayed
from encounters_service.settings import Settings, load_settings

STANDBY = "standby1"  # its slot and application_name, as synchronous_standby_names names it
WARD_LOCATIONS = 12  # a ward's census: about 30 of the 5,000 open encounters
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
# The platforms of the capacity table: (wards, seconds between two polls of a ward's screen).
PLATFORMS = ((200, 30), (2_000, 30), (2_000, 10))
CORES_PER_MACHINE = 8
WRITES_PER_S = (10, 100)  # ADT and clinical writes, for WAL per day
CPU_CONNECTIONS = 2  # one per core of the bench machine: busy, not queueing
ROUNDS = 3  # of writes without, then with, a synchronous standby


@dataclass(frozen=True)
class CpuPerCall:
    call: str
    served_by: str
    calls: int
    service_ms: float
    postgres_ms: float


@dataclass(frozen=True)
class Write:
    route: str
    wal_bytes: float  # per write
    fpi_bytes: float  # of which full-page images
    p50_ms: float
    sync_p50_ms: float


def census_routes() -> list[Route]:
    """bench.py's census call for the hospital's 2,000 locations, and the same for a ward's 12."""
    [hospital] = [route for route in routes(CENSUS, "") if route.name.startswith("locations")]
    [call] = hospital.calls
    ward = call.params["location_ids"].strip("{}").split(",")[:WARD_LOCATIONS]
    ward_call = replace(call, body="[" + ",".join(f'"{uuid}"' for uuid in ward) + "]",
                        params={**call.params, "location_ids": "{" + ",".join(ward) + "}"})  # fmt: skip
    return [Route("census, 2,000 locations", [call]), Route(f"census, {WARD_LOCATIONS} locations", [ward_call])]


def cpu_seconds(pids: list[int]) -> float:
    """utime + stime of the processes, in seconds."""
    ticks = 0
    for pid in pids:
        try:
            fields = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += int(fields[11]) + int(fields[12])  # fields 14 and 15 of proc(5), after pid and comm
    return ticks / CLOCK_TICKS


def postmaster_pid(datadir: Path) -> int:
    return int((datadir / "postmaster.pid").read_text().split()[0])


def cpu_per_call(base: str, route: Route, token: str, service_pid: int, server_pid: int, served_by: str,
                 options: Options, workdir: Path) -> CpuPerCall:  # fmt: skip
    """The CPU time of the service's and of the server's processes over a wrk run with CPU_CONNECTIONS,
    per call. Both trees are listed again after the run, so that a process started meanwhile counts
    (from 0: a few ms at most are missed)."""
    script = lua_script(route, token, workdir)
    before = {pid: cpu_seconds([pid]) for pid in process_tree(service_pid) + process_tree(server_pid)}
    run = wrk(base, script, CPU_CONNECTIONS, options.load_seconds)
    calls = run["requests"]

    def spent(root: int) -> float:
        return sum(cpu_seconds([pid]) - before.get(pid, 0.0) for pid in process_tree(root))

    found = CpuPerCall(
        route.name, served_by, calls, spent(service_pid) / calls * 1000, spent(server_pid) / calls * 1000
    )
    print(f"  cpu {route.name:26} on the {served_by}: service {found.service_ms:.2f} ms, PostgreSQL "
          f"{found.postgres_ms:.2f} ms per call ({calls:,} calls)", flush=True)  # fmt: skip
    return found


def reads_served(base: str) -> dict[str, float]:
    """encounters_db_reads_total by served_by, from the service's /metrics."""
    text = urllib.request.urlopen(f"{base}/metrics", timeout=5).read().decode()
    totals: dict[str, float] = {}
    for served_by, count in re.findall(r'encounters_db_reads_total\{[^}]*served_by="(\w+)"[^}]*\} (\S+)', text):
        totals[served_by] = totals.get(served_by, 0.0) + float(count)
    return totals


def wal_position(conn: psycopg.Connection) -> str:
    [(position,)] = conn.execute("SELECT pg_current_wal_lsn()::text").fetchall()
    return position


def wal_since(conn: psycopg.Connection, position: str) -> tuple[int, int]:
    """Bytes of WAL written since `position`: all of it, and the full-page images in it (a page's
    first change after a checkpoint logs the whole page: pg_walinspect)."""
    [(total, images)] = conn.execute(
        "SELECT sum(record_size + fpi_size)::bigint, sum(fpi_size)::bigint"
        " FROM pg_get_wal_stats(%s::pg_lsn, pg_current_wal_lsn())",
        [position],
    ).fetchall()
    return total, images


@contextmanager
def synchronous(conn: psycopg.Connection, standby: str):
    """synchronous_standby_names = standby on the primary (synchronous_commit is on by default),
    until exit; the standby is confirmed as `sync` in pg_stat_replication first."""
    conn.execute(f"ALTER SYSTEM SET synchronous_standby_names = '{standby}'")
    conn.execute("SELECT pg_reload_conf()")
    try:
        deadline = time.monotonic() + 10
        while conn.execute("SELECT sync_state FROM pg_stat_replication WHERE application_name = %s",
                           [standby]).fetchall() != [("sync",)]:  # fmt: skip
            if time.monotonic() > deadline:
                raise RuntimeError(f"{standby} did not become a synchronous standby")
            time.sleep(0.05)
        yield
    finally:
        conn.execute("ALTER SYSTEM RESET synchronous_standby_names")
        conn.execute("SELECT pg_reload_conf()")


def writes(base: str, write_routes: list[Route], token: str, primary: psycopg.Connection, options: Options,
           workdir: Path) -> list[Write]:  # fmt: skip
    """WAL per write and p50 (one connection), without and with a synchronous standby: ROUNDS of
    each in turn, so that both see the same machine; the median of the rounds' p50s."""
    primary.execute("CREATE EXTENSION IF NOT EXISTS pg_walinspect")

    def run(route: Route) -> tuple[int, int, int, float]:
        position = wal_position(primary)
        result = wrk(base, lua_script(route, token, workdir), 1, options.seconds)
        if result["errors"] or result["bad_status"]:
            raise RuntimeError(f"{route.name}: {result['errors']} errors, {result['bad_status']} non-2xx answers")
        return *wal_since(primary, position), result["requests"], result["p50"] / 1000

    found = []
    for route in write_routes:
        plain, synced, wal = [], [], [0, 0, 0]
        for _ in range(ROUNDS):
            total, images, requests, p50 = run(route)
            wal = [wal[0] + total, wal[1] + images, wal[2] + requests]
            plain.append(p50)
            with synchronous(primary, STANDBY):
                synced.append(run(route)[3])
        write = Write(route.name, wal[0] / wal[2], wal[1] / wal[2], statistics.median(plain), statistics.median(synced))
        found.append(write)
        print(f"  {route.name:15} {write.wal_bytes:7,.0f} B of WAL per write ({write.fpi_bytes:,.0f} B of full-page"
              f" images); p50 {write.p50_ms:.2f} ms, with a synchronous standby {write.sync_p50_ms:.2f} ms",
              flush=True)  # fmt: skip
    return found


# --- the report ------------------------------------------------------------------------------


def cpu_table(cpu: list[CpuPerCall]) -> str:
    lines = [
        "| census call | served by | calls | service CPU ms/call | PostgreSQL CPU ms/call |",
        "|---|---|--:|--:|--:|",
    ]
    lines += [f"| {c.call} | {c.served_by} | {c.calls:,} | {c.service_ms:.2f} | {c.postgres_ms:.2f} |" for c in cpu]
    return "\n".join(lines)


def writes_table(found: list[Write]) -> str:
    lines = ["| write | WAL bytes/write | of which full-page images | p50 ms | p50 ms, synchronous standby"
             " | cost of synchronous commit ms |", "|---|--:|--:|--:|--:|--:|"]  # fmt: skip
    lines += [f"| {w.route} | {w.wal_bytes:,.0f} | {w.fpi_bytes:,.0f} | {w.p50_ms:.2f} | {w.sync_p50_ms:.2f}"
              f" | {w.sync_p50_ms - w.p50_ms:+.2f} |" for w in found]  # fmt: skip
    return "\n".join(lines)


def capacity(cpu: list[CpuPerCall], found: list[Write], settings: Settings) -> str:
    """Census calls/s = wards / seconds between polls; cores = calls/s × CPU per call (measured, on
    the standby), at most 70 % busy; instances and standbys on CORES_PER_MACHINE-core machines;
    connections = instances × workers × POOL_MAX_SIZE, to the primary and to each standby."""
    on_standby = {c.call: c for c in cpu if c.served_by == "standby"}
    busy = 0.7
    per_instance = DEFAULT_WORKERS * settings.pool_max_size
    lines = [
        f"| wards | poll every | census calls/s | census call | service cores | instances ({CORES_PER_MACHINE} cores,"
        f" {CORES_PER_MACHINE} workers) | PostgreSQL cores | standbys ({CORES_PER_MACHINE} cores) |"
        f" connections to each server |",
        "|--:|--:|--:|---|--:|--:|--:|--:|--:|",
    ]
    for wards, every in PLATFORMS:
        calls = wards / every
        for c in on_standby.values():
            service_cores, postgres_cores = calls * c.service_ms / 1000, calls * c.postgres_ms / 1000
            instances = max(2, math.ceil(service_cores / busy / CORES_PER_MACHINE))  # two, to lose one
            standbys = max(1, math.ceil(postgres_cores / busy / CORES_PER_MACHINE))
            connections = instances * CORES_PER_MACHINE * settings.pool_max_size
            lines.append(f"| {wards:,} | {every} s | {calls:,.1f} | {c.call} | {service_cores:.2f} | {instances}"
                         f" | {postgres_cores:.2f} | {standbys} | {connections:,} |")  # fmt: skip
    lines.append("")
    lines.append(
        f"(a `serve` of {DEFAULT_WORKERS} workers opens up to {per_instance} connections to each server:"
        f" workers × POOL_MAX_SIZE {settings.pool_max_size}; with {CORES_PER_MACHINE} workers,"
        f" {CORES_PER_MACHINE * settings.pool_max_size}; PostgreSQL's default max_connections is 100)"
    )
    lines += ["", "| writes/s | WAL per day, creates | WAL per day, location PATCHes |", "|--:|--:|--:|"]
    by_route = {w.route: w for w in found}

    def per_day(rate: int, name: str) -> str:
        write = by_route[name]
        low, high = (rate * 86_400 * size / 1e9 for size in (write.wal_bytes - write.fpi_bytes, write.wal_bytes))
        return f"{low:.1f}–{high:.1f} GB"

    for rate in WRITES_PER_S:
        lines.append(f"| {rate} | {per_day(rate, 'create')} | {per_day(rate, 'patch location')} |")
    lines.append("(from the records alone, to the records and a full-page image as often as measured here,"
                 " right after a checkpoint)")  # fmt: skip
    return "\n".join(lines)


# --- the run ---------------------------------------------------------------------------------


def main() -> None:
    stop_cleanly_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1-second wrk runs")
    # Fewer than bench.py's 16: one caller (the bench's token) gets half a worker's pool for the
    # census at most (api/read_gate.py), and is answered 503 after 0.5 s waiting beyond that.
    parser.add_argument("--connections", type=int, default=8, help="keep-alive connections for throughput")
    parser.add_argument("--seconds", type=int, help="per wrk run (default 4, quick 1)")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("bench: `wrk` is not on PATH (Debian/Ubuntu: apt-get install -y wrk; macOS: brew install wrk)")
    seconds = args.seconds or (1 if args.quick else 4)
    options = Options(seconds=seconds, load_seconds=max(seconds, 2), warmup=0 if args.quick else 1,
                      connections=args.connections, floor_seconds=0.5 if args.quick else 1.5, reuse=False,
                      server_env={}, serve=SERVE, routes=())  # fmt: skip
    started = time.perf_counter()
    token = mint_token(
        load_settings({"HS_KEY": HS_KEY}), scopes=[READ_SCOPE, WRITE_SCOPE], claims={"clinician_id": "bench"}
    )
    results: list[Result] = []
    cpu: list[CpuPerCall] = []
    with ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="encounters-bench-")))
        data_dir = Path(tempfile.mkdtemp(prefix="encounters-bench-pg-"))
        data_dir.chmod(0o755)  # the servers' user (postgres, when run as root) reaches into it
        stack.callback(shutil.rmtree, data_dir, ignore_errors=True)
        local = stack.enter_context(start_local_postgres(data_dir / "primary", free_port()))
        conninfo = scratch_database(make_conninfo(local.conninfo, dbname="postgres"), CENSUS, reuse=False)
        dbname = conninfo_to_dict(conninfo)["dbname"]
        standby = start_local_standby("127.0.0.1", local.port, data_dir / "standby", STANDBY,
                                      options="-c hot_standby_feedback=on", dbname=dbname)  # fmt: skip
        stack.callback(standby.stop)
        wait_until_replayed(conninfo, standby)
        primary = stack.enter_context(psycopg.connect(conninfo, autocommit=True))
        servers: dict[str, tuple[str, int, dict[str, str]]] = {
            "standby": (standby.conninfo(), postmaster_pid(standby.datadir), {"DATABASE_READ_URL": standby.conninfo()}),
            "primary": (conninfo, postmaster_pid(local.pgdata), {}),
        }
        census = census_routes()
        for served_by, (floor_on, server_pid, env) in servers.items():
            floor = stack.enter_context(
                connect_sync(floor_on, autocommit=True, options=session_options(load_settings()))
            )
            run_options = replace(options, server_env=env)
            with service(conninfo, workdir / "service.log", run_options, SERVE) as (base, process):
                before = reads_served(base)
                for route in census:
                    named = Route(f"{route.name}, on the {served_by}", route.calls)
                    results.append(measure(base, named, CENSUS, floor, token, run_options, workdir))
                    cpu.append(
                        cpu_per_call(base, route, token, process.pid, server_pid, served_by, run_options, workdir)
                    )
                if served_by == "standby":
                    after = reads_served(base)
                    moved = {where: after.get(where, 0) - before.get(where, 0) for where in after}
                    print(f"  census reads served by (encounters_db_reads_total): {moved}", flush=True)
                    if moved.get("primary", 0) > moved.get("standby", 0) / 100:
                        raise RuntimeError(f"the census was not served by the standby: {moved}")
                else:
                    write_routes = [r for r in routes(CENSUS, "") if not r.read]
                    found = writes(base, write_routes, token, primary, run_options, workdir)
        if any(r.failures for r in results):
            shutil.copy(workdir / "service.log", "standby_bench_service.log")
            print("requests failed: the service's log is in standby_bench_service.log")

    print(f"\n{table(results)}\n\n{cpu_table(cpu)}\n\n{writes_table(found)}\n")
    print(f"capacity, from the census calls' CPU on the standby (README \"Deploying beyond one machine\"):\n"
          f"{capacity(cpu, found, load_settings())}")  # fmt: skip
    print(
        f"\n{os.cpu_count()} CPUs (the primary, the standby, the service and wrk share them); wrk: 1 connection for "
        f"{options.seconds} s (latency, writes), {args.connections} for {options.load_seconds} s (req/s), "
        f"{CPU_CONNECTIONS} for {options.load_seconds} s (CPU); total {time.perf_counter() - started:.0f} s"
    )


if __name__ == "__main__":
    main()
