"""What the metrics middleware (encounters_service.metrics.instrument) adds per request, in a loop:
an ASGI app that answers at once, called directly, with and without the middleware; in memory (one
process) and in prometheus_client's multiprocess mode (files in PROMETHEUS_MULTIPROC_DIR, as under
`serve`), with the once-a-second publish included. For scale, the same for the request log line
(encounters_service.logs.request_logging, INFO, written to /dev/null). Prints microseconds per
request, the median of ROUNDS interleaved rounds.

    .venv/bin/python bench/metrics_overhead.py            # both modes, each in its own process
"""

from __future__ import annotations

import asyncio
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time

REQUESTS = 100_000
ROUNDS = 7
SCOPE = {"type": "http", "method": "GET", "path": "/dhos/v1/encounter/0b9c…", "headers": []}


async def answer(scope, receive, send) -> None:
    scope["path_template"] = "/dhos/v1/encounter/{encounter_id}"  # as Litestar's router sets it
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"{}"})


async def receive() -> dict:
    return {"type": "http.request", "body": b""}


async def send(message) -> None:
    pass


async def per_request_us(app) -> float:
    started = time.perf_counter()
    for _ in range(REQUESTS):
        await app(dict(SCOPE), receive, send)
    return (time.perf_counter() - started) / REQUESTS * 1e6


async def measure() -> dict[str, float]:
    from encounters_service.logs import configure_logging, request_logging
    from encounters_service.metrics import _TALLY, instrument

    configure_logging("INFO", "plain")
    logging.getLogger().handlers[0].setStream(open(os.devnull, "w"))  # noqa: SIM115 (open until exit)
    apps = {"bare": answer, "metrics": instrument(answer), "request log": request_logging(answer)}
    timings: dict[str, list[float]] = {name: [] for name in apps}
    for _ in range(ROUNDS):  # interleaved
        for name, app in apps.items():
            timings[name].append(await per_request_us(app))
            started = time.perf_counter()
            _TALLY.publish()  # what a second's requests cost at publish time (one series here)
            timings[name][-1] += (time.perf_counter() - started) / REQUESTS * 1e6
    return {name: statistics.median(values) for name, values in timings.items()}


def main() -> None:
    if len(sys.argv) > 1:  # one mode, in this process: the environment is read at import
        us = asyncio.run(measure())
        print(
            f"{sys.argv[1]:>12}: bare app {us['bare']:.2f} µs; added per request: metrics"
            f" {us['metrics'] - us['bare']:.2f} µs, request log line {us['request log'] - us['bare']:.2f} µs"
        )
        return
    with tempfile.TemporaryDirectory() as directory:
        for mode, env in (("memory", {}), ("multiprocess", {"PROMETHEUS_MULTIPROC_DIR": directory})):
            clean = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
            subprocess.run([sys.executable, __file__, mode], env={**clean, **env}, check=True)


if __name__ == "__main__":
    main()
