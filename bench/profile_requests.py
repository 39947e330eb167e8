"""Where a request's CPU goes: Litestar, our code, psycopg, granian, msgspec, the rest.

    .venv/bin/python bench/profile_requests.py [--requests 5000] [--route "get by id"] [--connections 8] [--bare]

In a scratch database seeded with the census dataset (bench.py's helpers: a throwaway local
PostgreSQL unless --database-url), serves the service as `encounters-service serve` does (granian,
production defaults, PROMETHEUS_MULTIPROC_DIR) but with one worker whose app is wrapped by a
control route (CONTROL, answered before the service sees the request). Then, with wrk:
  1. a warm-up;
  2. N requests unprofiled: the worker's CPU per request, split between its event-loop thread
     (all the Python: Litestar, our code, psycopg, …) and its other threads (granian's Rust
     runtime: HTTP parsing, sockets);
  3. N requests under yappi (CPU clock, builtins profiled, the loop thread only; yappi follows
     coroutines across their awaits, charging each resumption to the coroutine's own function):
     the loop thread's CPU split by the module of each function's own (self) time.
With --bare, step 2 again for bench/bare_app.py (the same server, pool and query files with no
framework) behind the same control route: the stack's own CPU per request, beside the service's.
The loop thread's unprofiled CPU is shared out as the profile shares it (yappi's own cost per call
is thus spread over the functions in proportion to their time, which flatters C code a little).
Two views: "own time" charges each function's self time to its module's component; "with the
calls it makes" also charges stdlib functions and builtins to the component that called them
(the request log's logging.Formatter to our code, Litestar's dict copies to Litestar). The target
(issue 17 item 4): our own code ≤ 25% of a request's CPU, judged on the second, stricter view.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import sys
import tempfile
import time
import urllib.request
from collections import defaultdict
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path
from typing import Any

from psycopg.conninfo import conninfo_to_dict, make_conninfo

import bench
from bench import (
    BARE_ROUTES,
    CENSUS,
    HS_KEY,
    NO_FRAMEWORK,
    Options,
    Route,
    last_changes_since,
    lua_script,
    routes,
    scratch_database,
    service,
    stop_cleanly_on_sigterm,
    wrk,
)

CONTROL = "/__profile__/"  # start?mode=cpu|yappi, stop: answered by the wrapper, not the service
SERVE_PROFILED = "{python} " + shlex.quote(str(Path(__file__).resolve())) + " --serve"
SERVE_BARE = SERVE_PROFILED + "-bare"  # bench/bare_app.py's app behind the same control route
TARGET_SHARE = 0.25  # issue 17 item 4: our own code ≤ 25% of a request's CPU
SERVER = "granian/ASGI server"
LOOP = "event loop (uvloop, outside Python)"
OURS = "our code (encounters_service)"
COMPONENTS = ("Litestar", OURS, "psycopg/pool", SERVER, LOOP, "msgspec", "other libraries", "stdlib/other")


# --- in the server's worker -------------------------------------------------------------------


def profiled_app() -> Callable[..., Any]:
    """The worker's app (granian calls this factory): the service's, behind the control route."""
    from encounters_service.app import app_from_env

    return _behind_control(app_from_env())


def profiled_bare_app() -> Callable[..., Any]:
    """bare_app.py's app (the same server, pool and query files, no framework), behind the control route."""
    import bare_app

    return _behind_control(bare_app.app())


def _behind_control(app: Callable[..., Any]) -> Callable[..., Any]:
    state: dict[str, Any] = {}

    async def control(scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] == "http" and scope["path"].startswith(CONTROL):
            answer = _control(scope["path"].removeprefix(CONTROL), scope["query_string"].decode(), state)
            body = json.dumps(answer).encode()
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"application/json")]})  # fmt: skip
            await send({"type": "http.response.body", "body": body})
            return
        await app(scope, receive, send)

    return control


def _control(command: str, query: str, state: dict[str, Any]) -> dict[str, Any]:
    import yappi

    if command == "start":
        state["yappi"] = query == "mode=yappi"
        if state["yappi"]:
            yappi.clear_stats()
            yappi.set_clock_type("cpu")
            yappi.start(builtins=True, profile_threads=False)  # this thread: the event loop's
        state["cpu"] = (time.thread_time(), time.process_time())
        return {}
    loop_cpu, process_cpu = time.thread_time(), time.process_time()
    if state.get("yappi"):
        yappi.stop()
    answer: dict[str, Any] = {
        "loop_cpu_s": loop_cpu - state["cpu"][0],
        "process_cpu_s": process_cpu - state["cpu"][1],
    }
    if state.get("yappi"):
        stats = yappi.get_func_stats()
        answer["functions"] = [
            {"index": f.index, "module": f.module, "name": f.name, "builtin": bool(f.builtin), "ncall": f.ncall,
             "tsub": f.tsub, "ttot": f.ttot,
             "children": [(child.index, child.ttot, child.ncall) for child in f.children]}
            for f in stats
        ]  # fmt: skip
        yappi.clear_stats()
    return answer


def serve(factory: str) -> None:
    """What `encounters-service serve` runs, with one worker and the profiled factory."""
    from encounters_service.cli import _metrics_directory, http_server
    from encounters_service.logs import configure_logging
    from encounters_service.settings import load_settings

    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format)
    with ExitStack() as stack:
        _metrics_directory(stack)  # multiprocess metrics, as in production
        http_server(f"profile_requests:{factory}", settings, workers=1).serve()


# --- attribution ------------------------------------------------------------------------------


def component(module: str, name: str, builtin: bool) -> str | None:
    """The component of a function's own time, from its module's file (for a builtin, from the
    type of which it is a method, "<method 'send' of 'granian._granian.ASGIHTTPProtocol' objects>",
    or from its module, "msgspec._core"); None for the stdlib and the interpreter's builtins.
    (Cython code, psycopg_binary's and uvloop's, is not seen: its time is its Python caller's.)"""
    where = module.replace("\\", "/")
    if builtin and module == "builtins":
        where = name.partition(" of '")[2]
    for marker, label in (
        ("encounters_service", OURS),
        ("litestar", "Litestar"),
        ("psycopg", "psycopg/pool"),  # psycopg, psycopg_pool, psycopg_binary
        ("granian", SERVER),
        ("msgspec", "msgspec"),
        ("profile_requests.py", "harness"),
    ):
        if marker in where:
            return label
    return "other libraries" if "site-packages/" in where else None


def _component(f: dict) -> str | None:
    return component(f["module"], f["name"], f["builtin"])


def owners(functions: list[dict]) -> dict[int, dict[int, float]]:
    """For each function, who its own time is charged to in the "with the calls it makes" view:
    itself if it is of a component, else (stdlib, builtins) the owners of its callers, in
    proportion to the time it spent called from each; {} for a stdlib function called only by
    the stdlib (the event loop's own)."""
    by_index = {f["index"]: f for f in functions}
    callers: dict[int, list[tuple[int, float]]] = defaultdict(list)
    for f in functions:
        for child, ttot, _ in f["children"]:
            if f["index"] != child:
                callers[child].append((f["index"], ttot))
    found: dict[int, dict[int, float]] = {}

    def owner(index: int, seen: frozenset[int]) -> dict[int, float]:
        if index in found:
            return found[index]
        if _component(by_index[index]) is not None:
            shares = {index: 1.0}
        else:
            weights: dict[int, float] = defaultdict(float)
            total = 0.0
            for caller, ttot in callers.get(index, []):
                if caller in seen or caller not in by_index or ttot <= 0:
                    continue  # a cycle of calls: charged along its other edges
                for who, share in owner(caller, seen | {index}).items():
                    weights[who] += share * ttot
                total += ttot
            shares = {who: weight / total for who, weight in weights.items()} if total else {}
        if not seen:  # a result cut short by a cycle is not kept
            found[index] = shares
        return shares

    return {f["index"]: owner(f["index"], frozenset()) for f in functions}


def charged_seconds(functions: list[dict]) -> dict[int, float]:
    """Seconds by function in the "with the calls it makes" view (key -1: the stdlib's own)."""
    by_index = {f["index"]: f for f in functions}
    seconds: dict[int, float] = defaultdict(float)
    for index, shares in owners(functions).items():
        for who, share in shares.items():
            seconds[who] += by_index[index]["tsub"] * share
        if not shares:
            seconds[-1] += by_index[index]["tsub"]
    return seconds


def shares(functions: list[dict], charge_calls: bool) -> dict[str, float]:
    """Seconds of CPU by component: of each function's own time, or with `charge_calls` of its
    own time and that of the stdlib functions and builtins it called (owners)."""
    if charge_calls:
        by_index = {f["index"]: f for f in functions}
        timed = [(by_index.get(index), value) for index, value in charged_seconds(functions).items()]
    else:
        timed = [(f, f["tsub"]) for f in functions]
    seconds: dict[str, float] = defaultdict(float)
    for f, value in timed:
        seconds[(f and _component(f)) or "stdlib/other"] += value
    return seconds


def top_functions(functions: list[dict], count: int) -> list[tuple[dict, float]]:
    """Our code's functions with the most time in the "with the calls it makes" view."""
    by_index = {f["index"]: f for f in functions}
    ours = [(by_index[index], value) for index, value in charged_seconds(functions).items()
            if index >= 0 and _component(by_index[index]) == OURS]  # fmt: skip
    return sorted(ours, key=lambda pair: pair[1], reverse=True)[:count]


# --- the run ----------------------------------------------------------------------------------


def control(base: str, command: str) -> dict[str, Any]:
    with urllib.request.urlopen(base + CONTROL + command, timeout=60) as answer:
        result: dict[str, Any] = json.loads(answer.read())
        return result


def run_counted(base: str, script: Path, connections: int, seconds: int, mode: str) -> tuple[dict[str, Any], int]:
    """The worker's CPU (and profile) for one wrk run of the script: (stop's answer, requests)."""
    control(base, f"start?mode={mode}")
    loaded = wrk(base, script, connections, seconds)
    if loaded["errors"] or loaded["bad_status"]:
        raise RuntimeError(f"{loaded['errors']} failed and {loaded['bad_status']} non-2xx requests: see the log")
    return control(base, "stop"), loaded["requests"]


def profile(base: str, route: Route, token: str, workdir: Path, requests: int, connections: int) -> dict[str, Any]:
    """About `requests` requests unprofiled, then as many under yappi (wrk runs for a time, not a
    count: the time is what the warm-up's rate says N takes, and the count is what was answered)."""
    script = lua_script(route, token, workdir)
    warm = wrk(base, script, connections, 2)  # prepared statements, caches, the pool at its size
    seconds = max(1, round(requests / (warm["requests"] / warm["seconds"])))
    plain, plain_n = run_counted(base, script, connections, seconds, "cpu")
    # yappi slows the loop thread down (2-3×): a longer run for about as many requests.
    profiled, profiled_n = run_counted(base, script, connections, 3 * seconds, "yappi")
    return {"plain": plain, "plain_requests": plain_n, "profiled": profiled, "profiled_requests": profiled_n}


def per_request_us(measured: dict[str, Any]) -> float:
    """The worker's CPU per request, unprofiled, in µs."""
    return float(measured["plain"]["process_cpu_s"]) / measured["plain_requests"] * 1e6


def report(route: Route, measured: dict[str, Any], connections: int, top: int) -> tuple[bool, list[str]]:
    plain, profiled = measured["plain"], measured["profiled"]
    n = measured["plain_requests"]
    total_us = per_request_us(measured)
    loop_us = plain["loop_cpu_s"] / n * 1e6
    others_us = total_us - loop_us
    functions = [f for f in profiled["functions"] if _component(f) != "harness"]
    profiled_loop = profiled["loop_cpu_s"]
    lines = [
        f"{route.name}: {n:,} requests on {connections} connections, one worker: "
        f"{total_us:.0f} µs CPU per request unprofiled ({loop_us:.0f} µs in the event-loop thread, "
        f"{others_us:.0f} µs in granian's runtime threads); under yappi the loop thread took "
        f"{profiled_loop / measured['profiled_requests'] * 1e6:.0f} µs per request",
        "",
        "| component | own time µs/request | share | with the calls it makes µs/request | share |",
        "|---|--:|--:|--:|--:|",
    ]
    views = []
    for charge_calls in (False, True):
        seconds = shares(functions, charge_calls)
        attributed = sum(seconds.values())
        # The loop thread's time in no Python function: uvloop's own C, between callbacks.
        outside = max(0.0, profiled_loop - attributed)
        seconds[LOOP] += outside
        scale = loop_us / profiled_loop  # the profile's shares of the unprofiled loop thread
        view = {name: value * scale for name, value in seconds.items()}
        view[SERVER] = view.get(SERVER, 0.0) + others_us
        views.append(view)
    for name in COMPONENTS:
        own, charged = views[0].get(name, 0.0), views[1].get(name, 0.0)
        lines.append(f"| {name} | {own:.0f} | {own / total_us:.0%} | {charged:.0f} | {charged / total_us:.0%} |")
    lines += ["", f"our code's top {top} functions (µs per request; with the stdlib and builtins they call):",
              "| function | calls/request | own | with calls |", "|---|--:|--:|--:|"]  # fmt: skip
    scale = loop_us / profiled_loop  # seconds of the profile → µs per request, unprofiled
    for f, charged in top_functions(functions, top):
        where = f["module"].rsplit("encounters_service/", 1)[-1]
        lines.append(f"| {where}:{f['name']} | {f['ncall'] / measured['profiled_requests']:.1f} "
                     f"| {f['tsub'] * scale:.1f} | {charged * scale:.1f} |")  # fmt: skip
    ours = views[1].get(OURS, 0.0) / total_us
    met = ours <= TARGET_SHARE
    lines += ["", f"{'met    ' if met else 'NOT MET'}  our own code ≤ {TARGET_SHARE:.0%} of a request's CPU "
              f"({route.name}): {ours:.0%} with the calls it makes, {views[0].get(OURS, 0.0) / total_us:.0%} "
              "own time"]  # fmt: skip
    return met, lines


def main() -> None:
    if sys.argv[1:] in (["--serve"], ["--serve-bare"]):
        serve("profiled_app" if sys.argv[1] == "--serve" else "profiled_bare_app")
        return
    stop_cleanly_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=5_000, help="requests per measured run (default 5,000)")
    parser.add_argument("--route", action="append", help="bench.py route name (prefix); default get by id")
    parser.add_argument("--connections", type=int, default=8, help="wrk keep-alive connections (default 8)")
    parser.add_argument("--database-url", help="PostgreSQL server for the scratch database (default: a local one)")
    parser.add_argument("--reuse", action="store_true", help="keep the seeded database of an earlier run")
    parser.add_argument("--top", type=int, default=12, help="how many of our functions to list")
    parser.add_argument("--json", type=Path, help="also write the measurements (and the raw profile) here")
    parser.add_argument("--bare", action="store_true", help="also bench/bare_app.py's CPU per request, for "
                        f"the routes it answers ({', '.join(BARE_ROUTES)})")  # fmt: skip
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("profile_requests: `wrk` is not on PATH (apt-get install -y wrk)")
    try:
        import yappi  # noqa: F401 (in the server's worker: here only to say so before starting)
    except ImportError:
        sys.exit("profile_requests: needs yappi: pip install -e '.[bench]' (make install does)")
    wanted = tuple(args.route or ["get by id"])
    options = Options(seconds=1, load_seconds=2, warmup=0, connections=args.connections, floor_seconds=0,
                      reuse=args.reuse, server_env={"WEB_CONCURRENCY": "1"}, serve=SERVE_PROFILED,
                      routes=wanted)  # fmt: skip
    all_met, measurements = True, {}
    with ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="encounters-profile-")))
        if args.database_url is None:
            from encounters_service.embedded import start_local_postgres

            data_dir = Path(tempfile.mkdtemp(prefix="encounters-profile-pg-"))
            stack.callback(shutil.rmtree, data_dir, ignore_errors=True)
            server = make_conninfo(stack.enter_context(start_local_postgres(data_dir)).conninfo, dbname="postgres")
        else:
            dbname = conninfo_to_dict(args.database_url).get("dbname", "postgres")
            server = make_conninfo(args.database_url, dbname=dbname)
        conninfo = scratch_database(server, CENSUS, args.reuse)
        token = bench.mint_token(bench.load_settings({"HS_KEY": HS_KEY}), scopes=[bench.READ_SCOPE],
                                 claims={"clinician_id": "bench"})  # fmt: skip
        chosen = [r for r in routes(CENSUS, last_changes_since(conninfo, 100)) if r.name.startswith(wanted)]
        base, _ = stack.enter_context(service(conninfo, workdir / "service.log", options, options.serve))
        for route in chosen:
            measured = profile(base, route, token, workdir, args.requests, args.connections)
            met, lines = report(route, measured, args.connections, args.top)
            all_met &= met
            measurements[route.name] = measured
            print("\n".join(lines) + "\n", flush=True)
        bare_routes = [route for route in chosen if route.name in BARE_ROUTES] if args.bare else []
        if bare_routes:
            bare = replace(options, serve=SERVE_BARE)
            bare_base, _ = stack.enter_context(service(conninfo, workdir / "bare.log", bare, bare.serve))
            for route in bare_routes:
                measured = profile(bare_base, route, token, workdir, args.requests, args.connections)
                service_us = per_request_us(measurements[route.name])
                bare_us = per_request_us(measured)
                measurements[route.name + NO_FRAMEWORK] = measured
                print(f"{route.name}{NO_FRAMEWORK} (bench/bare_app.py): {bare_us:.0f} µs CPU per request, the "
                      f"service {service_us:.0f} µs ({service_us / bare_us:.2f}×)\n", flush=True)  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(measurements))
    print(f"all routes: {'met' if all_met else 'NOT MET'}")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()
