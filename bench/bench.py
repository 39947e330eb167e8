"""The service against the floor PostgreSQL sets: every route, at 5k and at 1M encounters.

    make bench                       # or: .venv/bin/python bench/bench.py [--quick] [--database-url URL]

For each dataset (census: 5,000 open encounters at 2,000 locations plus 50,000 discharged;
scale: 1,000,000 encounters of 300,000 patients at 5,000 locations), in a scratch database
(on the server of --database-url, else on a throwaway local PostgreSQL): migrate, seed with
bench/seed_encounters.sql, VACUUM ANALYZE; start `encounters-service serve` as its own process
(production defaults); then per route:
  - the SQL floor: the route's own query file, same parameters, run directly on one psycopg
    connection (prepared, like the service's), median of repeated runs;
  - latency: wrk with one keep-alive connection (p50/p90/p99, comparable to the floor);
  - throughput: wrk with --connections keep-alive connections (requests/s).
For get by id and patient_count, the same three again against bench/bare_app.py (the same server
and pool running the same query with no framework): the stack's own floor for a GET and a POST.
Then: the service's peak memory (PSS and RSS) during the census call with 8 clients, the scale
plans (no sequential scan), the table, and the issue's targets, each met or not. Needs `wrk`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl

import psycopg
from psycopg import RawCursor
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from encounters_service import migrate
from encounters_service.api import fhir
from encounters_service.auth import READ_SCOPE, WRITE_SCOPE, mint_token
from encounters_service.db import connect_sync, run_sync, session_options
from encounters_service.embedded import start_local_postgres
from encounters_service.settings import load_settings
from encounters_service.sqlfiles import Query, load_queries, parse_query

BENCH_DIR = Path(__file__).resolve().parent
SEED = BENCH_DIR / "seed_encounters.sql"
RENDER = BENCH_DIR / "render_documents.sql"
SEEDED_TABLES = ("encounter", "location_history", "score_system_history")
HS_KEY = "bench-" + "k" * 64  # long enough for HS512
QUERIES = load_queries()
SERVE = "{python} -m encounters_service serve"  # production defaults; PORT and DATABASE_URL from the environment
BARE = "{python} " + shlex.quote(str(BENCH_DIR / "bare_app.py"))  # the same server and pool, no framework
BARE_ROUTES = ("get by id", "patient_count (50 ids)")  # the routes bare_app.py answers: a GET and a POST


@dataclass(frozen=True)
class Dataset:
    name: str
    encounters: int
    patients: int
    locations: int
    open_encounters: int
    mixed: bool  # some deleted and some child encounters


CENSUS = Dataset("census", 55_000, 5_000, 2_000, 5_000, mixed=False)
SCALE = Dataset("scale", 1_000_000, 300_000, 5_000, 12_500, mixed=True)
QUICK_SCALE = Dataset("scale", 100_000, 30_000, 5_000, 12_500, mixed=True)


@dataclass(frozen=True)
class Call:
    """One HTTP request and the query file (with its parameters) the service runs for it."""

    method: str
    path: str
    body: str | None
    query: str
    params: dict


@dataclass(frozen=True)
class Route:
    name: str
    calls: list[Call]  # cycled through, by wrk and by the floor alike
    read: bool = True


@dataclass
class Result:
    dataset: str
    route: str
    items: int = 0
    kilobytes: float = 0.0
    floor_ms: float = 0.0
    p50_ms: float = 0.0
    p90_ms: float = 0.0
    p99_ms: float = 0.0
    requests_per_s: float = 0.0
    failures: int = 0  # socket errors and non-2xx answers in the wrk runs
    read: bool = True
    method: str = "GET"

    @property
    def ratio(self) -> float:
        return self.p50_ms / self.floor_ms


def md5_uuid(prefix: str, k: object) -> str:
    """The seed's ids: md5(prefix || k)::uuid."""
    return str(uuid.UUID(hashlib.md5(f"{prefix}{k}".encode()).hexdigest()))


def routes(dataset: Dataset, modified_since: str) -> list[Route]:
    """The routes with realistic parameters: ids of the seed (patients 0..open-1 have an open stay)."""
    locations = [md5_uuid("location", k) for k in range(2_000)]
    open_patients = [md5_uuid("patient", k) for k in range(0, dataset.open_encounters, dataset.open_encounters // 500)]
    any_patients = [md5_uuid("patient", k) for k in range(1, dataset.patients, dataset.patients // 1_000)]
    # The first 1,000 rows are discharged, never deleted (i % 53 != 0 skipped), some with histories.
    encounters = [md5_uuid("encounter", i) for i in range(1, 1_100) if i % 53][:1_000]
    last_stays = [k + (dataset.encounters - 1 - k) // dataset.patients * dataset.patients for k in range(1_000)]
    open_encounters = [md5_uuid("encounter", i) for i in last_stays]  # of patients 0..999: open
    moves = locations[:2]  # wards of the census, so that the census keeps its size
    admissions = md5_uuid("admissions ward", "")

    def post(path: str, ids: list[str], query: str, **params: object) -> Call:
        # Lists go to the query file as array literals, as psql -v passes them and as the service does.
        as_sent = {
            name: "{" + ",".join(value) + "}" if isinstance(value, list) else value for name, value in params.items()
        }
        return Call("POST", path, json.dumps(ids), query, as_sent)

    def get(path: str, query: str, **params: object) -> Call:
        return Call("GET", path, None, query, params)

    def fhir_search(query: str) -> Call:
        # The query file's parameters as the service decodes them (api/fhir.py), on a base URL of its own.
        params = fhir.search_parameters(parse_qsl(query), "http://bench/fhir/R4", "urn:bench:epr")
        return Call("GET", f"/fhir/R4/Encounter?{query}", None, "fhir.search", params)

    def create(k: int) -> Call:
        # Local and already discharged, so that repeating it never clashes with a uniqueness rule.
        body = {
            "patient_uuid": md5_uuid("new patient", k),
            "location_uuid": locations[k % len(locations)],
            "patient_record_uuid": md5_uuid("new record", k),
            "dh_product_uuid": md5_uuid("product", ""),
            "admitted_at": "2026-11-01T08:00:00.000Z",
            "discharged_at": "2026-11-03T08:00:00.000Z",
            "score_system": "news2",
        }
        text = json.dumps(body)
        return Call("POST", "/dhos/v2/encounter", text, "writes.create_encounter",
                    dict(body=text, caller="bench", can_edit_ews=False))  # fmt: skip

    def move(n: int) -> Call:
        # Each request moves an open encounter to the other of two wards: every one writes history.
        encounter, location = open_encounters[n % 1_000], moves[n // 1_000 % 2]
        text = json.dumps({"location_uuid": location})
        return Call("PATCH", f"/dhos/v1/encounter/{encounter}", text, "writes.update_encounter",
                    dict(encounter_id=encounter, body=text, caller="bench", can_edit_ews=False,
                         if_match=[]))  # fmt: skip

    # One route per line, with its arguments.
    # fmt: off
    return [
        Route("locations (2,000 ids)", [post("/dhos/v1/encounter/locations", locations, "encounters.open_at_locations",
              location_ids=locations, open_as_of="infinity", compact=False)]),
        Route("patients (500 ids)", [post("/dhos/v1/encounter/patients", open_patients, "encounters.open_for_patients",
              patient_ids=open_patients, open_as_of="infinity", compact=False)]),
        Route("latest POST (100 ids)", [post("/dhos/v2/encounter/latest", any_patients[:100],
              "encounters.latest_per_patient", patient_ids=any_patients[:100], open_as_of="-infinity", compact=False)]),
        Route("latest GET", [get(f"/dhos/v2/encounter/latest?patient_id={p}", "encounters.latest",
              patient_id=p, open_as_of="-infinity", compact=False) for p in any_patients]),
        Route("patient_count (50 ids)", [post("/dhos/v1/encounter/locations/patient_count", locations[:50],
              "encounters.patient_count_per_location", location_ids=locations[:50], open_as_of="infinity")]),
        Route("list by patient", [get(f"/dhos/v2/encounter?patient_id={p}", "encounters.by_patient_or_epr_id",
              patient_id=p, epr_encounter_id="", compact=False, expanded=False, show_deleted=False,
              show_children=False) for p in any_patients]),
        Route("modified_since (last 100)", [get(f"/dhos/v2/encounters?modified_since={modified_since}",
              "encounters.modified_since", modified_since=modified_since, compact=False, expanded=False,
              show_deleted=False, show_children=False)]),
        Route("get by id", [get(f"/dhos/v1/encounter/{e}", "writes.get_encounter", encounter_id=e,
              show_deleted=False) for e in encounters]),
        # Every open stay, and one in ten others, came through the admissions ward: 12,500 open at 1M.
        Route("FHIR location in progress (1,000)", [fhir_search(f"location=Location/{admissions}"
              "&status=in-progress&_count=1000")]),
        Route("FHIR by patient", [fhir_search(f"patient=Patient/{p}") for p in any_patients]),
        Route("create", [create(k) for k in range(1_000)], read=False),
        Route("patch location", [move(n) for n in range(2_000)], read=False),
    ]
    # fmt: on


# --- the database ------------------------------------------------------------------------------


def scratch_database(server: str, dataset: Dataset, reuse: bool) -> str:
    """A migrated database seeded with `dataset` (kept from an earlier run with --reuse)."""
    name = f"encounters_bench_{dataset.name}"
    with psycopg.connect(server, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if exists and not reuse:
            conn.execute(f"DROP DATABASE {name} WITH (FORCE)")
        if not exists or not reuse:
            conn.execute(f"CREATE DATABASE {name}")
    conninfo = make_conninfo(server, dbname=name)
    migrate.upgrade(conninfo)  # also re-applies sql/functions, so a reused database runs the current code
    if exists and reuse:
        return conninfo
    started = time.perf_counter()
    count = seed(conninfo, encounters=dataset.encounters, patients=dataset.patients, locations=dataset.locations,
                 open_encounters=dataset.open_encounters, mixed=dataset.mixed)  # fmt: skip
    print(f"{dataset.name}: seeded {count:,} encounters in {time.perf_counter() - started:.1f} s", flush=True)
    return conninfo


def seed(conninfo: str, **params: object) -> int:
    """Seed a migrated database with bench/seed_encounters.sql, render the stored documents with
    bench/render_documents.sql (the document triggers are off meanwhile: row by row, they took
    most of the seeding), then VACUUM ANALYZE. Each step runs one share per CPU at once.
    Returns the number of encounters."""
    seed_query = parse_query("bench.seed_encounters", SEED, SEED.read_text())
    render = parse_query("bench.render_documents", RENDER, RENDER.read_text())
    parts = os.cpu_count() or 1

    def in_parallel(query: Query, **shared: object) -> int:
        def run(part: int) -> int:
            with connect_sync(conninfo, autocommit=True) as conn:
                [(count,)] = run_sync(conn, query, **shared, part=part, parts=parts)
                return count

        with ThreadPoolExecutor(parts) as pool:
            return sum(pool.map(run, range(parts)))

    with connect_sync(conninfo, autocommit=True) as conn:
        for table in SEEDED_TABLES:
            conn.execute(f"ALTER TABLE encounters.{table} DISABLE TRIGGER USER")
        try:
            count = in_parallel(seed_query, **params)
            conn.execute("ANALYZE")  # else the renderer's history look-ups are planned as scans
            in_parallel(render)
        finally:
            for table in SEEDED_TABLES:
                conn.execute(f"ALTER TABLE encounters.{table} ENABLE TRIGGER USER")
        conn.execute("VACUUM ANALYZE")
    return count


def last_changes_since(conninfo: str, how_many: int) -> str:
    """The `modified_since` that selects the last `how_many` changes."""
    with psycopg.connect(conninfo) as conn:
        [(at,)] = conn.execute(
            "SELECT modified FROM encounters.encounter ORDER BY modified DESC OFFSET %s LIMIT 1", [how_many]
        ).fetchall()
    return at.isoformat().replace("+00:00", "Z")


def floor_ms(conn: psycopg.Connection, calls: list[Call], seconds: float) -> float:
    """Median time of the calls' query files run directly (prepared), after 3 warm-up runs:
    at least 10 timed runs, more while `seconds` last (at most 2,000)."""
    timings: list[float] = []
    started = time.perf_counter()
    n = 0
    while n < 13 or (time.perf_counter() - started < seconds and n < 2_000):
        call = calls[n % len(calls)]
        query = QUERIES[call.query]
        with RawCursor(conn) as cursor:
            before = time.perf_counter()
            cursor.execute(query.sql, query.arguments(call.params), prepare=True)
            cursor.fetchall()
            timings.append(time.perf_counter() - before)
        n += 1
    return statistics.median(timings[3:]) * 1000


def plans(conn: psycopg.Connection, route_list: list[Route]) -> dict[str, str]:
    """EXPLAIN ANALYZE of each read route's query file, with its first call's parameters."""
    found = {}
    for route in route_list:
        if route.read:
            call = route.calls[0]
            query = QUERIES[call.query]
            with RawCursor(conn) as cursor:
                cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + query.sql, query.arguments(call.params))
                found[route.name] = "\n".join(line for (line,) in cursor.fetchall())
    return found


# --- the service and the load ----------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def service(conninfo: str, log_path: Path, options: Options, serve: str) -> Iterator[tuple[str, subprocess.Popen]]:
    """The `serve` command (options.serve, or BARE) on a free port, stopped with SIGTERM afterwards."""
    port = free_port()
    env = {**os.environ, "DATABASE_URL": conninfo, "HS_KEY": HS_KEY, "PORT": str(port), **options.server_env}
    command = shlex.split(serve.format(python=sys.executable, port=port))
    with open(log_path, "ab") as log:
        process = subprocess.Popen(command, env=env, stdout=log, stderr=log)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the service did not start; see {log_path}")
            try:
                urllib.request.urlopen(f"{base}/running", timeout=1).read()
                break
            except urllib.error.HTTPError:  # an answer all the same (bare_app.py knows no /running)
                break
            except OSError:
                time.sleep(0.1)
        yield base, process
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)


def fetch(base: str, call: Call, token: str) -> bytes:
    request = urllib.request.Request(
        base + call.path,
        data=call.body.encode() if call.body else None,
        method=call.method,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    for _ in range(9):
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.read()
        except urllib.error.HTTPError as error:
            # The heavy requests a wrk run left queued (wrk gives up on them, the service does
            # not) can fill the read gate for a moment: a 503 with Retry-After. Wait, as a client would.
            if error.code != 503:
                raise
            time.sleep(float(error.headers.get("Retry-After") or 1))
    with urllib.request.urlopen(request, timeout=30) as response:  # the last try: its error is the caller's
        return response.read()


LUA = """
local calls = %(calls)s
local headers = {["Authorization"] = "Bearer %(token)s", ["Content-Type"] = "application/json"%(headers)s}
local prepared = {}
local n = 0
init = function(args)
    for i, c in ipairs(calls) do prepared[i] = wrk.format(c[1], c[2], headers, c[3]) end
end
request = function()
    n = n %% #prepared + 1
    return prepared[n]
end
done = function(summary, latency, requests)
    local e = summary.errors
    io.write(string.format(
        'RESULT {"requests": %%d, "seconds": %%f, "errors": %%d, "bad_status": %%d, ' ..
        '"p50": %%d, "p90": %%d, "p99": %%d}\\n',
        summary.requests, summary.duration / 1e6, e.connect + e.read + e.write + e.timeout, e.status,
        latency:percentile(50), latency:percentile(90), latency:percentile(99)))
end
"""


def lua_script(route: Route, token: str, directory: Path, headers: dict[str, str] | None = None) -> Path:
    """wrk's script for the route's calls, with the token, and `headers` in every request."""

    def literal(text: str | None) -> str:
        return "nil" if text is None else json.dumps(text)  # JSON string escapes are Lua's too (ASCII)

    calls = ",\n".join(f"{{{literal(c.method)}, {literal(c.path)}, {literal(c.body)}}}" for c in route.calls)
    path = directory / "route.lua"
    extra = "".join(f", [{literal(name)}] = {literal(value)}" for name, value in (headers or {}).items())
    path.write_text(LUA % {"calls": "{\n" + calls + "\n}", "token": token, "headers": extra})
    return path


def wrk(base: str, script: Path, connections: int, seconds: int) -> dict:
    command = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s", "-s", str(script), base]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    return json.loads(output.split("RESULT ", 1)[1])


def process_tree(root: int) -> list[int]:
    """A process and all its descendants."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo += children.get(pid, [])
    return tree


def memory_mb(pids: list[int]) -> tuple[float, float]:
    """(sum of RSS, sum of PSS) in MB. The server's worker processes are forked from its main
    process and share pages with it: RSS counts a shared page in each, PSS once in all."""
    rss = pss = 0
    for pid in pids:
        try:
            for line in (Path("/proc") / str(pid) / "smaps_rollup").read_text().splitlines():
                if line.startswith("Rss:"):
                    rss += int(line.split()[1])
                elif line.startswith("Pss:"):
                    pss += int(line.split()[1])
        except OSError:
            continue
    return rss / 1024, pss / 1024


def peak_memory_mb(pid: int, during) -> tuple[float, float]:
    """The highest (RSS, PSS) of the process tree, sampled every 20 ms while `during()` runs."""
    peak, stop = (0.0, 0.0), threading.Event()
    pids = process_tree(pid)

    def sample() -> None:
        nonlocal peak
        while not stop.is_set():
            rss, pss = memory_mb(pids)
            peak = (max(peak[0], rss), max(peak[1], pss))
            time.sleep(0.02)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        during()
    finally:
        stop.set()
        sampler.join()
    return peak


PEAK_PSS_MB = 200  # the targets (17, item 3): at most this during the census with 8 clients,
SETTLED_PSS_MB = 130  # and back to at most this within AFTER_S of the last census
AFTER_S = 60
SETTLED_FOR_S = 3  # sampling stops early once PSS has stayed at or below SETTLED_PSS_MB this long


def settling_mb(pid: int) -> tuple[float, float | None]:
    """PSS of the process tree sampled every 0.5 s for up to AFTER_S: (the last sample, seconds
    until PSS was at or below SETTLED_PSS_MB for good, or None if it was not by the end)."""
    pids, started = process_tree(pid), time.monotonic()
    settled_at = None
    while True:
        pss = memory_mb(pids)[1]
        now = time.monotonic() - started
        settled_at = (settled_at if settled_at is not None else now) if pss <= SETTLED_PSS_MB else None
        if now >= AFTER_S or (settled_at is not None and now - settled_at >= SETTLED_FOR_S):
            return pss, settled_at
        time.sleep(0.5)


def census_memory(pid: int, during) -> dict:
    """Memory of the service's process tree: the peak while `during()` (the census with 8 clients)
    runs, then how it settles after it (settling_mb)."""
    rss, pss = peak_memory_mb(pid, during)
    after, settled_s = settling_mb(pid)
    back = f"{settled_s:.1f} s after it" if settled_s is not None else f"not within {AFTER_S} s"
    print(f"  memory: peak {pss:.0f} MB PSS ({rss:.0f} MB RSS) during the census with 8 clients; then "
          f"{after:.0f} MB PSS, back to ≤ {SETTLED_PSS_MB} MB {back}", flush=True)  # fmt: skip
    return {"peak_rss_mb": rss, "peak_pss_mb": pss, "after_pss_mb": after, "settled_s": settled_s}


# --- one dataset -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Options:
    seconds: int  # per latency run
    load_seconds: int  # per throughput run
    warmup: int  # seconds of load before a route's measurements (0: none)
    connections: int
    floor_seconds: float
    reuse: bool
    server_env: dict[str, str]
    serve: str  # the service's command; {python} and {port} are filled in
    routes: tuple[str, ...]  # names (prefixes) of the routes to run; all when empty


def bench_dataset(server: str, dataset: Dataset, options: Options, workdir: Path) -> tuple[list[Result], dict]:
    conninfo = scratch_database(server, dataset, options.reuse)
    token = mint_token(
        load_settings({"HS_KEY": HS_KEY}), scopes=[READ_SCOPE, WRITE_SCOPE], claims={"clinician_id": "bench"}
    )
    route_list = routes(dataset, last_changes_since(conninfo, 100))
    results, extras = [], {}
    with ExitStack() as stack:
        # The floor's session is set up as the service's (no JIT, prepared statements).
        conn = stack.enter_context(connect_sync(conninfo, autocommit=True, options=session_options(load_settings())))
        base, process = stack.enter_context(service(conninfo, workdir / "service.log", options, options.serve))
        if dataset.mixed:  # the large dataset: show that every read is index-backed
            extras["plans"] = plans(conn, route_list)
        for route in route_list:
            if options.routes and not route.name.startswith(options.routes):
                continue
            result = measure(base, route, dataset, conn, token, options, workdir)
            if route.name.startswith("locations") and not dataset.mixed:
                script = lua_script(route, token, workdir)
                # Called before the next iteration: the loop variable it uses is this one.
                extras["memory"] = census_memory(process.pid, lambda: wrk(base, script, 8, options.seconds))  # noqa: B023
            results.append(result)
            if route.name in BARE_ROUTES:  # the same calls on the same server and pool, without the service's code
                bare = Route(route.name + NO_FRAMEWORK, route.calls, read=False)
                with service(conninfo, workdir / "bare.log", options, BARE) as (bare_base, _):
                    results.append(measure(bare_base, bare, dataset, conn, token, options, workdir))
        if dataset.mixed and wanted(options, FEED):
            extras["feed"] = feed_paging(base, token)
        if dataset.mixed and wanted(options, HISTORY_COST):
            writes = [route for route in route_list if not route.read]
            extras["history_cost"] = history_cost(base, writes, conn, token, options, workdir)
    return results, extras


FEED = "feed"
HISTORY_COST = "history cost"
FEED_PAGE = 1_000
KEEP_VERSION = "ALTER TABLE encounters.encounter {} TRIGGER encounter_keep_version"


def wanted(options: Options, name: str) -> bool:
    return not options.routes or name.startswith(options.routes)


def feed_paging(base: str, token: str) -> dict[str, float]:
    """A consumer paging the change feed from the beginning to `more: false`, one page of FEED_PAGE
    after the other through the HTTP route: changes per second, and each page's time."""
    cursor, pages, changes = None, [], 0
    started = time.perf_counter()
    while True:
        query = f"?limit={FEED_PAGE}" + (f"&cursor={urllib.parse.quote(cursor)}" if cursor else "")
        before = time.perf_counter()
        page = json.loads(fetch(base, Call("GET", "/dhos/v2/encounters/changes" + query, None, "", {}), token))
        pages.append(time.perf_counter() - before)
        changes += len(page["encounters"])
        cursor = page["cursor"]
        if not page["more"]:
            break
    seconds = time.perf_counter() - started
    print(f"  feed: {changes:,} changes in {len(pages):,} pages, {seconds:.1f} s", flush=True)
    p99 = sorted(pages)[int(len(pages) * 0.99)]
    return {"changes": changes, "pages": len(pages), "seconds": seconds,
            "p50_ms": statistics.median(pages) * 1000, "p99_ms": p99 * 1000}  # fmt: skip


def history_cost(base: str, writes: list[Route], conn: psycopg.Connection, token: str, options: Options,
                 workdir: Path) -> dict[str, tuple[float, float]]:  # fmt: skip
    """Each write route's p50 (wrk, one connection) without and with the kept history (trigger
    encounter_keep_version disabled, then enabled, on the scratch database), in alternating rounds
    of the same run: {route: (median p50 without, median p50 with)} in ms."""
    rounds = 2 if options.seconds <= 1 else 3
    p50s: dict[tuple[str, bool], list[float]] = {}
    try:
        for _ in range(rounds):
            for kept in (False, True):
                conn.execute(KEEP_VERSION.format("ENABLE" if kept else "DISABLE"))
                for route in writes:
                    latency = wrk(base, lua_script(route, token, workdir), 1, options.seconds)
                    p50s.setdefault((route.name, kept), []).append(latency["p50"] / 1000)
    finally:
        conn.execute(KEEP_VERSION.format("ENABLE"))
    cost = {route.name: (statistics.median(p50s[route.name, False]), statistics.median(p50s[route.name, True]))
            for route in writes}  # fmt: skip
    for name, (without, with_history) in cost.items():
        print(f"  history cost: {name:20} p50 {without:6.2f} ms without, {with_history:6.2f} ms with", flush=True)
    return cost


def extras_table(extras: dict) -> str:
    """The feed and the history's cost per write, when measured."""
    lines = []
    if "feed" in extras:
        feed = extras["feed"]
        lines += [
            f"change feed, pages of {FEED_PAGE:,} from the beginning to the end (HTTP, one consumer):",
            "| changes | pages | changes/s | p50 ms per page | p99 ms per page |",
            "|--:|--:|--:|--:|--:|",
            f"| {feed['changes']:,} | {feed['pages']:,} | {feed['changes'] / feed['seconds']:,.0f} "
            f"| {feed['p50_ms']:.1f} | {feed['p99_ms']:.1f} |",
            "",
        ]
    if "history_cost" in extras:
        lines += [
            "cost per write of the kept history (trigger encounter_keep_version off/on, alternating rounds, same run):",
            "| write | p50 ms without history | p50 ms with history | with/without |",
            "|---|--:|--:|--:|",
        ]
        lines += [f"| {name} | {without:.2f} | {kept:.2f} | {kept / without:.2f} |"
                  for name, (without, kept) in extras["history_cost"].items()]  # fmt: skip
    return "\n".join(lines)


NO_FRAMEWORK = ", no framework"


def measure(base: str, route: Route, dataset: Dataset, conn: psycopg.Connection, token: str, options: Options,
            workdir: Path) -> Result:  # fmt: skip
    """The route's answer size, SQL floor, latency on one connection and throughput on many."""
    result = Result(dataset.name, route.name, read=route.read, method=route.calls[0].method)
    answer = json.loads(fetch(base, route.calls[0], token))
    if isinstance(answer, dict) and answer.get("resourceType") == "Bundle":  # a FHIR search: its entries
        answer = answer.get("entry", [])
    result.items = 1 if isinstance(answer, dict) and "uuid" in answer else len(answer)  # one, or a list/map
    result.kilobytes = len(json.dumps(answer)) / 1024
    script = lua_script(route, token, workdir)
    if options.warmup:
        wrk(base, script, options.connections, options.warmup)
    result.floor_ms = floor_ms(conn, route.calls, options.floor_seconds)
    latency = wrk(base, script, 1, options.seconds)
    result.p50_ms, result.p90_ms, result.p99_ms = (latency[p] / 1000 for p in ("p50", "p90", "p99"))
    loaded = wrk(base, script, options.connections, options.load_seconds)
    result.requests_per_s = loaded["requests"] / loaded["seconds"]
    result.failures = sum(run["errors"] + run["bad_status"] for run in (latency, loaded))
    print(f"  {dataset.name:6} {route.name:26} p50 {result.p50_ms:7.2f} ms  floor {result.floor_ms:7.2f} ms  "
          f"{result.requests_per_s:8.0f} req/s", flush=True)  # fmt: skip
    return result


# --- the report ------------------------------------------------------------------------------


CENSUS_ROUTE = "locations (2,000 ids)"
NOT_ENCOUNTERS = ("patient_count",)  # reads whose answer is not a list of encounters (counts per location)


def floor_allowance_ms(results: list[Result], r: Result) -> float | None:
    """Issue 17 item 1: what a read answering r.items encounters may cost PostgreSQL: twice the
    census's floor per encounter (same dataset, same run) for each, plus 0.3 ms. None for a route
    that answers no encounters, or without the census of its dataset."""
    census = next((c for c in results if c.dataset == r.dataset and c.route == CENSUS_ROUTE), None)
    if census is None or not r.read or r.route.startswith(NOT_ENCOUNTERS) or r.route.endswith(NO_FRAMEWORK):
        return None
    return 2 * census.floor_ms / census.items * r.items + 0.3


def table(results: list[Result]) -> str:
    census = {r.route: r for r in results if r.dataset == "census"}
    lines = [
        "| dataset | route | items | KB | req/s | p50 ms | p90 ms | p99 ms | SQL floor ms | p50/floor"
        " | p50 scale/census | floor/allowed | failed |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for r in results:
        growth = f"{r.p50_ms / census[r.route].p50_ms:.2f}" if r.dataset != "census" and r.route in census else ""
        allowed = floor_allowance_ms(results, r)
        per_encounter = f"{r.floor_ms / allowed:.2f}" if allowed else ""
        lines.append(
            f"| {r.dataset} | {r.route} | {r.items:,} | {r.kilobytes:,.0f} | {r.requests_per_s:,.0f} | {r.p50_ms:.2f} "
            f"| {r.p90_ms:.2f} | {r.p99_ms:.2f} | {r.floor_ms:.2f} | {r.ratio:.2f} | {growth} | {per_encounter} "
            f"| {r.failures} |"
        )
    return "\n".join(lines)


def per_encounter_target(results: list[Result]) -> tuple[bool, str]:
    """Issue 17 item 1, over every read answering encounters, at each dataset measured."""
    judged = [(r, allowed) for r in results if (allowed := floor_allowance_ms(results, r))]
    over = [f"{r.dataset} {r.route} {r.floor_ms:.2f} > {allowed:.2f} ms"
            for r, allowed in judged if r.floor_ms > allowed]  # fmt: skip
    per = ", ".join(f"{c.dataset} {c.floor_ms / c.items * 1000:.1f} µs" for c in results if c.route == CENSUS_ROUTE)
    return (not over, f"R4.1 every list route's SQL floor ≤ 2 × the census floor per encounter ({per}) × its items "
            f"+ 0.3 ms ('floor/allowed' ≤ 1): {len(judged) - len(over)} of {len(judged)} within"
            + (f"; over: {'; '.join(over)}" if over else ""))  # fmt: skip


BARE_P50_RATIO = 1.3  # issue 17 item 4: a BARE_ROUTES route's p50 ≤ 1.3× the bare stack's
BARE_RATE_RATIO = 0.7  # and its req/s ≥ 0.7× the bare stack's


def bare_stack_checks(results: list[Result]) -> list[tuple[bool, str]]:
    """Each BARE_ROUTES route against bare_app.py (the same server, pool and query file, no
    framework) measured in the same run: p50 service / p50 bare ≤ BARE_P50_RATIO and req/s
    service / req/s bare ≥ BARE_RATE_RATIO. What is left over is the framework's and the
    service's own CPU per request: bench/profile_requests.py shares it out."""
    by = {(r.dataset, r.route): r for r in results}
    checks = []
    for r in results:
        bare = by.get((r.dataset, r.route + NO_FRAMEWORK))
        if r.route not in BARE_ROUTES or bare is None:
            continue
        p50, rate = r.p50_ms / bare.p50_ms, r.requests_per_s / bare.requests_per_s
        checks.append((p50 <= BARE_P50_RATIO and rate >= BARE_RATE_RATIO,
                       f"2b. {r.dataset} {r.route} vs the bare stack: p50 {r.p50_ms:.2f}/{bare.p50_ms:.2f} ms = "
                       f"{p50:.2f}× (≤ {BARE_P50_RATIO}), {r.requests_per_s:,.0f}/{bare.requests_per_s:,.0f} req/s = "
                       f"{rate:.2f}× (≥ {BARE_RATE_RATIO})"))  # fmt: skip
    return checks


def filtering_seq_scan(plan: str) -> bool:
    """Whether an EXPLAIN ANALYZE text has a sequential scan that throws rows away (a filter that
    an index could have applied). One that keeps every row it reads is the way to read a whole
    table: the seed's location history is all at the admissions ward, which the FHIR location
    search reads in full."""
    lines = plan.splitlines()
    for i, line in enumerate(lines):
        if "Seq Scan" not in line:
            continue
        node = len(line) - len(line.lstrip(" ->"))
        for detail in lines[i + 1 :]:
            if len(detail) - len(detail.lstrip(" ->")) <= node:
                break  # the next node: this scan's details have ended
            if "Rows Removed by Filter" in detail:
                return True
    return False


def targets(results: list[Result], extras: dict) -> list[tuple[bool, str]]:
    by = {(r.dataset, r.route): r for r in results}
    reads = [r for r in results if r.read]
    census_call = by[("census", CENSUS_ROUTE)]
    worst = max(reads, key=lambda r: r.ratio)
    checks = [
        (census_call.ratio <= 2 and census_call.p50_ms <= 40,
         f"1. census locations: p50 {census_call.p50_ms:.1f} ms (≤ 40), {census_call.ratio:.2f}× its floor (≤ 2)"),
        (worst.ratio <= 2, f"2. every read p50 ≤ 2× its floor: worst {worst.ratio:.2f} ({worst.dataset} {worst.route})"
         ),
        *bare_stack_checks(results),  # the reads whose floor is below the stack's own cost per request
    ]  # fmt: skip
    scale = [r for r in reads if r.dataset != "census"]
    if scale:
        worst = max(scale, key=lambda r: r.p50_ms / by[("census", r.route)].p50_ms)
        growth = worst.p50_ms / by[("census", worst.route)].p50_ms
        seq = [name for name, plan in extras.get("plans", {}).items() if filtering_seq_scan(plan)]
        checks.append((growth <= 2 and not seq, f"3. scale p50 ≤ 2× census p50: worst {growth:.2f} ({worst.route}); "
                       f"sequential scans: {', '.join(seq) or 'none'}"))  # fmt: skip
    single = [by[(d, route)] for (d, route) in by if route in ("get by id", "latest GET")]
    slowest = min(single, key=lambda r: r.requests_per_s)
    checks.append((slowest.requests_per_s >= 3000,
                   f"4. single-encounter reads ≥ 3,000 req/s: lowest {slowest.requests_per_s:,.0f} "
                   f"({slowest.dataset} {slowest.route})"))  # fmt: skip
    checks.append(per_encounter_target(results))
    memory = extras.get("memory", {"peak_rss_mb": 0.0, "peak_pss_mb": 0.0, "after_pss_mb": 0.0, "settled_s": None})
    checks.append((memory["peak_pss_mb"] <= PEAK_PSS_MB,
                   f"5. peak memory, census locations with 8 clients: {memory['peak_pss_mb']:.0f} MB PSS "
                   f"(≤ {PEAK_PSS_MB}; sum of the processes' RSS, shared pages counted in each: "
                   f"{memory['peak_rss_mb']:.0f} MB)"))  # fmt: skip
    settled = memory["settled_s"]
    checks.append((settled is not None,
                   f"5. memory after the census: {memory['after_pss_mb']:.0f} MB PSS, "
                   + (f"≤ {SETTLED_PSS_MB} MB {settled:.1f} s after the last census" if settled is not None
                      else f"not ≤ {SETTLED_PSS_MB} MB within {AFTER_S} s of the last census")))  # fmt: skip
    return checks


def stop_cleanly_on_sigterm() -> None:
    """Make SIGTERM (kill, a CI timeout) unwind like Ctrl-C, so that the local PostgreSQL and the
    service a run started are stopped: left behind, they kept both cores busy."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))


def main() -> None:
    stop_cleanly_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short runs and a 100k-encounter scale dataset")
    parser.add_argument("--database-url", help="PostgreSQL server for the scratch databases (default: a local one)")
    parser.add_argument("--datasets", default="census,scale", help="comma-separated: census, scale")
    parser.add_argument("--connections", type=int, default=16, help="keep-alive connections for throughput")
    parser.add_argument("--seconds", type=int, help="per wrk run (default 4, quick 1)")
    parser.add_argument(
        "--reuse", action="store_true", help="keep seeded databases from an earlier run (--database-url)"
    )
    parser.add_argument("--plans", action="store_true", help="print the scale dataset's plans")
    parser.add_argument("--env", action="append", default=[], help="KEY=VALUE for the service (e.g. POOL_MAX_SIZE=8)")
    parser.add_argument("--serve", default=SERVE, help=f"the service's command (default {SERVE!r})")
    parser.add_argument("--routes", default="", help="comma-separated route names (prefixes) to run; default all")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("bench: `wrk` is not on PATH (Debian/Ubuntu: apt-get install -y wrk; macOS: brew install wrk)")

    seconds = args.seconds or (1 if args.quick else 4)
    options = Options(
        seconds=seconds,
        load_seconds=max(seconds, 2),  # a 100 ms answer under 16 clients needs more than 1 s
        warmup=0 if args.quick else 1,
        connections=args.connections,
        floor_seconds=0.5 if args.quick else 1.5,
        reuse=args.reuse,
        server_env=dict(pair.split("=", 1) for pair in args.env),
        serve=args.serve,
        routes=tuple(name for name in args.routes.split(",") if name),
    )
    datasets = {"census": CENSUS, "scale": QUICK_SCALE if args.quick else SCALE}
    started = time.perf_counter()
    results, extras = [], {}
    with ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="encounters-bench-")))
        server = args.database_url
        if server is None:
            data_dir = Path(tempfile.mkdtemp(prefix="encounters-bench-pg-"))
            stack.callback(shutil.rmtree, data_dir, ignore_errors=True)
            local = stack.enter_context(start_local_postgres(data_dir))
            server = make_conninfo(local.conninfo, dbname="postgres")
        else:
            server = make_conninfo(server, dbname=conninfo_to_dict(server).get("dbname", "postgres"))
        for name in args.datasets.split(","):
            dataset_results, dataset_extras = bench_dataset(server, datasets[name], options, workdir)
            results += dataset_results
            extras.update(dataset_extras)

    print(f"\n{table(results)}\n")
    if "feed" in extras or "history_cost" in extras:
        print(f"{extras_table(extras)}\n")
    if "plans" in extras:
        for route, plan in extras["plans"].items():
            print(
                f"=== {route}\n{plan}\n"
                if args.plans
                else f"plan: {route}: {'SEQ SCAN' if filtering_seq_scan(plan) else 'index'}"
            )
    if args.quick:
        print(
            "quick run: short runs, no warm-up, a 100,000-encounter scale dataset:"
            " the targets are judged on `make bench`"
        )
    if "census" in args.datasets and not args.routes:
        for met, text in targets(results, extras):
            print(f"{'met    ' if met else 'NOT MET'}  {text}")
    elif args.routes:  # some routes only: the bare-stack ratios of those measured
        for met, text in bare_stack_checks(results):
            print(f"{'met    ' if met else 'NOT MET'}  {text}")
    print(f"\n{os.cpu_count()} CPUs; wrk: 1 connection for {options.seconds} s (latency), {args.connections} for "
          f"{options.load_seconds} s (req/s); total {time.perf_counter() - started:.0f} s")  # fmt: skip


if __name__ == "__main__":
    main()
