"""The census end to end through a shaped link, with and without compression, and its CPU on the service.

    make bench          # after bench/bench.py; or: .venv/bin/python bench/shaped_link_bench.py [--quick]

Needs root, `ip` and `tc` (iproute2) and wrk. The bench makes a network namespace of its own
(`ip netns add`) and removes it at the end; the service (`encounters-service serve`, production
defaults) and wrk both run inside it, on its loopback, whose MTU is set to Ethernet's 1,500 bytes
and whose egress is rate-limited by a token bucket (`tc qdisc … tbf`; this kernel has no netem,
so no delay is added). The database (a throwaway local PostgreSQL, the census dataset of
bench/bench.py: 5,000 open encounters at 2,000 locations) stays outside, reached over a unix
socket, which no network namespace stops.

For each rate (100 Mbit/s, 1 Gbit/s) and ROUNDS rounds, each round sending in turn no
Accept-Encoding (identity) and each coding the service offers (zstd, br, gzip), the census call
(POST /dhos/v1/encounter/locations, 2,000 ids) with one wrk connection: p50 of the whole answer,
and the service's CPU per call (utime + stime of its processes over the run, /proc/<pid>/stat,
divided by the calls). Each row is the median of its rounds; ratios are to identity at the same
rate. Targets (issue 17, item 2): at 100 Mbit/s the census ≤ 1/3 of its uncompressed time; at
1 Gbit/s no slower than uncompressed.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from psycopg.conninfo import conninfo_to_dict, make_conninfo
from standby_bench import cpu_seconds

from bench import (
    CENSUS,
    HS_KEY,
    SERVE,
    Options,
    free_port,
    lua_script,
    process_tree,
    routes,
    scratch_database,
    stop_cleanly_on_sigterm,
)
from bench import service as serve
from bench import wrk as run_wrk
from encounters_service.auth import READ_SCOPE, mint_token
from encounters_service.compression import PREFERENCE
from encounters_service.embedded import start_local_postgres
from encounters_service.settings import load_settings

# tc's spelling: bits per second; "unshaped": the namespace's loopback as it is (the work alone).
RATES: dict[str, float | None] = {"unshaped": None, "100mbit": 100e6, "1gbit": 1e9}
CODINGS = ("identity", *PREFERENCE)
ROUNDS = 5
MTU = 1500  # Ethernet's, not the loopback's 64 KB: segments as a real link carries them
BURST_S = 0.002  # the token bucket holds 2 ms of the rate (at least 64 KB)
# tbf's latency: how long a packet may wait in its queue before being dropped. Long enough that no
# packet is: on a loopback's near-zero round trip, TCP fills any shorter queue, and each drop at the
# end of an answer costs a 200 ms retransmission timeout (measured with 50 ms: p50s of 500 ms at
# 100 Mbit/s for 320 ms of transfer), which says more about the shaping than about the answer.
QUEUE_MS = 1000


@dataclass(frozen=True)
class Row:
    rate: str
    coding: str
    answer_kb: float
    p50_ms: float
    service_cpu_ms: float
    calls: int


def shape(rate: str) -> None:
    """Inside the namespace: its loopback limited to `rate`, replacing any earlier limit."""
    bits = RATES[rate]
    if bits is None:
        subprocess.run(["tc", "qdisc", "del", "dev", "lo", "root"], check=False, stderr=subprocess.DEVNULL)
        return
    burst = max(64 * 1024, int(bits / 8 * BURST_S))
    subprocess.run(
        [
            "tc",
            "qdisc",
            "replace",
            "dev",
            "lo",
            "root",
            "tbf",
            "rate",
            rate,
            "burst",
            str(burst),
            "latency",
            f"{QUEUE_MS}ms",
        ],
        check=True,
    )


def dropped() -> int:
    """Packets the loopback's token bucket has dropped since it was set (0 when there is none)."""
    shown = subprocess.run(["tc", "-s", "qdisc", "show", "dev", "lo"], capture_output=True, text=True).stdout
    return sum(int(count) for count in re.findall(r"dropped (\d+)", shown))


def census_size(base: str, headers: dict[str, str]) -> int:
    """Bytes of the census answer as sent (urllib does not decode it)."""
    [call] = census_route().calls
    request = urllib.request.Request(base + call.path, data=(call.body or "").encode(), headers=headers)
    with urllib.request.urlopen(request, timeout=30) as response:
        return len(response.read())


def census_route():
    [route] = [route for route in routes(CENSUS, "") if route.name.startswith("locations")]
    return route


def inside(conninfo: str, options: Options, rounds: int, workdir: Path) -> tuple[list[Row], dict[str, int]]:
    """In the namespace: the service on `conninfo`, then every rate and coding, ROUNDS times in
    turn. Returns the rows, and the packets dropped at each rate."""
    token = mint_token(load_settings({"HS_KEY": HS_KEY}), scopes=[READ_SCOPE], claims={"clinician_id": "bench"})
    subprocess.run(["ip", "link", "set", "lo", "mtu", str(MTU), "up"], check=True)
    route = census_route()
    found: dict[tuple[str, str], list[tuple[float, float, int]]] = {}
    sizes: dict[str, int] = {}
    drops: dict[str, int] = {}
    with serve(conninfo, workdir / "service.log", options, SERVE) as (base, process):
        for coding in CODINGS:
            headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
            sizes[coding] = census_size(base, headers | ({} if coding == "identity" else {"Accept-Encoding": coding}))
        for rate in RATES:
            shape(rate)
            if options.warmup:
                run_wrk(base, lua_script(route, token, workdir), 1, options.warmup)
            for _ in range(rounds):
                for coding in CODINGS:
                    headers = {} if coding == "identity" else {"Accept-Encoding": coding}
                    script = lua_script(route, token, workdir, headers)
                    pids = process_tree(process.pid)
                    before = {pid: cpu_seconds([pid]) for pid in pids}
                    result = run_wrk(base, script, 1, options.seconds)
                    if result["errors"] or result["bad_status"]:
                        raise RuntimeError(
                            f"{rate} {coding}: {result['errors']} errors, {result['bad_status']} non-2xx"
                        )
                    spent = sum(cpu_seconds([pid]) - before.get(pid, 0.0) for pid in process_tree(process.pid))
                    calls = result["requests"]
                    found.setdefault((rate, coding), []).append((result["p50"] / 1000, spent / calls * 1000, calls))
                    print(
                        f"  {rate:7} {coding:8} p50 {result['p50'] / 1000:7.1f} ms, service CPU "
                        f"{spent / calls * 1000:5.1f} ms per call ({calls} calls)",
                        flush=True,
                    )
            drops[rate] = dropped()
    rows = [
        Row(
            rate,
            coding,
            sizes[coding] / 1024,
            statistics.median(r[0] for r in runs),
            statistics.median(r[1] for r in runs),
            sum(r[2] for r in runs),
        )
        for (rate, coding), runs in found.items()
    ]
    return rows, drops


def table(rows: list[Row]) -> str:
    identity = {row.rate: row for row in rows if row.coding == "identity"}
    lines = [
        "| link | Accept-Encoding | answer KB | p50 ms | × identity | service CPU ms/call | calls |",
        "|---|---|--:|--:|--:|--:|--:|",
    ]
    for row in rows:
        label = "(none)" if row.coding == "identity" else row.coding
        lines.append(
            f"| {row.rate} | {label} | {row.answer_kb:,.0f} | {row.p50_ms:.1f} "
            f"| {row.p50_ms / identity[row.rate].p50_ms:.2f} | {row.service_cpu_ms:.1f} | {row.calls:,} |"
        )
    return "\n".join(lines)


def targets(rows: list[Row]) -> list[tuple[bool, str]]:
    by = {(row.rate, row.coding): row for row in rows}
    checks = []
    for rate, most, wording in (("100mbit", 1 / 3, "≤ 1/3"), ("1gbit", 1.0, "≤ 1.00")):
        plain = by[(rate, "identity")].p50_ms
        ratios = {coding: by[(rate, coding)].p50_ms / plain for coding in PREFERENCE}
        others = ", ".join(f"{coding} {ratio:.2f}" for coding, ratio in ratios.items() if coding != PREFERENCE[0])
        checks.append(
            (
                ratios[PREFERENCE[0]] <= most,
                f"shaped link {rate}: census with {PREFERENCE[0]} {ratios[PREFERENCE[0]]:.2f}× its uncompressed"
                f" p50 ({wording}; {others})",
            )
        )
    return checks


def main() -> None:
    stop_cleanly_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1-second runs, 1 round")
    parser.add_argument("--seconds", type=int, help="per wrk run (default 3, quick 1)")
    parser.add_argument("--rounds", type=int, help=f"of every coding at every rate (default {ROUNDS}, quick 1)")
    parser.add_argument("--inside", help=argparse.SUPPRESS)  # the database's conninfo: run in the namespace
    args = parser.parse_args()
    seconds = args.seconds or (1 if args.quick else 3)
    rounds = args.rounds or (1 if args.quick else ROUNDS)
    options = Options(
        seconds=seconds,
        load_seconds=seconds,
        warmup=0 if args.quick else 1,
        connections=1,
        floor_seconds=0,
        reuse=False,
        server_env={},
        serve=SERVE,
        routes=(),
    )
    if args.inside:
        with tempfile.TemporaryDirectory(prefix="encounters-shaped-") as workdir:
            rows, drops = inside(args.inside, options, rounds, Path(workdir))
        print(f"\n{table(rows)}\n")
        print("packets dropped by the token bucket: " + ", ".join(f"{rate} {n:,}" for rate, n in drops.items()))
        for met, text in targets(rows):
            print(f"{'met    ' if met else 'NOT MET'}  {text}")
        return
    missing = [tool for tool in ("ip", "tc", "wrk") if not shutil.which(tool)]
    if os.geteuid() != 0 or missing:
        print(f"shaped link bench skipped: it needs root (a network namespace) and {', '.join(missing) or 'ip, tc'}")
        return
    started = time.perf_counter()
    namespace = f"encounters-bench-{uuid.uuid4().hex[:8]}"
    with ExitStack() as stack:
        data_dir = Path(tempfile.mkdtemp(prefix="encounters-bench-pg-"))
        data_dir.chmod(0o755)
        stack.callback(shutil.rmtree, data_dir, ignore_errors=True)
        socket_dir = Path(tempfile.mkdtemp(prefix="enc-sock-"))  # short: a socket path has at most 107 bytes
        socket_dir.chmod(0o1777)
        stack.callback(shutil.rmtree, socket_dir, ignore_errors=True)
        local = stack.enter_context(start_local_postgres(data_dir, free_port(), socket_dir=socket_dir))
        conninfo = scratch_database(make_conninfo(local.conninfo, dbname="postgres"), CENSUS, reuse=False)
        over_socket = make_conninfo(conninfo, host=str(socket_dir), port=str(local.port))
        subprocess.run(["ip", "netns", "add", namespace], check=True)
        stack.callback(subprocess.run, ["ip", "netns", "delete", namespace], check=False)
        command = [
            "ip",
            "netns",
            "exec",
            namespace,
            sys.executable,
            os.path.abspath(__file__),
            "--inside",
            over_socket,
            "--seconds",
            str(seconds),
            "--rounds",
            str(rounds),
            *(["--quick"] if args.quick else []),
        ]
        subprocess.run(command, check=True)
    print(
        f"\n{os.cpu_count()} CPUs (PostgreSQL, the service and wrk share them); database "
        f"{conninfo_to_dict(conninfo)['dbname']} over a unix socket; wrk: 1 connection, {seconds} s per run, "
        f"{rounds} rounds; total {time.perf_counter() - started:.0f} s"
    )


if __name__ == "__main__":
    main()
