"""GET /metrics: scraped and parsed as Prometheus does; requests counted by route template, method and
status; the pool and outbox gauges; 503s by cause; and, with `serve --workers 2`, counts summed over
the worker processes."""

from __future__ import annotations

import dataclasses
import os
import signal
import time
from pathlib import Path

import httpx
import psycopg
import pytest
from litestar.testing import TestClient
from prometheus_client import REGISTRY
from prometheus_client.mmap_dict import MmapedDict, mmap_key
from prometheus_client.parser import text_string_to_metric_families

from encounters_service import cli
from encounters_service.app import create_app
from encounters_service.db import APPLICATION_NAME
from encounters_service.metrics import _Tally
from encounters_service.settings import SettingsError, load_settings
from tests.api.test_encounter_writes import ENCOUNTERS, create, encounter_url, new_uuid
from tests.conftest import server_conninfo
from tests.helpers import SERVICE_ENV, TEST_SETTINGS, Service, as_app, auth

ENCOUNTER_ROUTE = "/dhos/v1/encounter/{encounter_id}"
Samples = dict[tuple[str, frozenset], float]


def parse(text: str) -> Samples:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def scrape(client) -> Samples:
    response = client.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    return parse(response.text)


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def requests(samples: Samples, route: str, method: str, status: int) -> float:
    return value(samples, "encounters_http_requests_total", route=route, method=method, status=str(status))


def test_requests_are_counted_by_route_template_method_and_status(client):
    encounter = create(client)
    before = scrape(client)
    for _ in range(2):
        assert client.get(encounter_url(encounter["uuid"]), headers=auth()).status_code == 200
    assert client.get(encounter_url(new_uuid()), headers=auth()).status_code == 404
    assert client.get(encounter_url(encounter["uuid"])).status_code == 401  # no token
    assert client.get(f"/no/such/route/{new_uuid()}").status_code == 404
    assert client.delete("/running").status_code == 405
    assert client.post(ENCOUNTERS, json={}, headers=auth()).status_code == 400
    after = scrape(client)

    def moved(route: str, method: str, status: int) -> float:
        return requests(after, route, method, status) - requests(before, route, method, status)

    assert moved(ENCOUNTER_ROUTE, "GET", 200) == 2
    assert moved(ENCOUNTER_ROUTE, "GET", 404) == 1
    assert moved(ENCOUNTER_ROUTE, "GET", 401) == 1
    assert moved("unmatched", "GET", 404) == 1
    assert moved("unmatched", "DELETE", 405) == 1
    assert moved(ENCOUNTERS, "POST", 400) == 1
    assert moved("/metrics", "GET", 200) == 1  # the first scrape
    # Latency by route and method: one observation per request, in the +Inf bucket at least.
    histogram = "encounters_http_request_duration_seconds"
    labels = {"route": ENCOUNTER_ROUTE, "method": "GET"}
    assert value(after, f"{histogram}_count", **labels) - value(before, f"{histogram}_count", **labels) == 4
    assert value(after, f"{histogram}_bucket", le="+Inf", **labels) == value(after, f"{histogram}_count", **labels)
    assert value(after, f"{histogram}_sum", **labels) > value(before, f"{histogram}_sum", **labels)
    # No raw path in any label: ids do not become series.
    routes = {dict(labels).get("route") for _, labels in after}
    assert not [route for route in routes if route and (encounter["uuid"] in route or "/no/such" in route)]


def test_latencies_land_in_the_buckets_prometheus_would_put_them_in():
    tally = _Tally()  # the per-process tally behind the middleware, published as the app does
    durations = (0.0005, 0.001, 0.003, 20.0)  # a bucket holds what is <= its bound
    for seconds in durations:
        tally.add("/test/buckets", "GET", 200, seconds)
    tally.publish()

    def sample(suffix: str, **labels: str) -> float | None:
        labels = {"route": "/test/buckets", "method": "GET", **labels}
        return REGISTRY.get_sample_value(f"encounters_http_request_duration_seconds{suffix}", labels)

    cumulative = {le: sample("_bucket", le=le) for le in ("0.001", "0.0025", "0.005", "10.0", "+Inf")}
    assert cumulative == {"0.001": 2, "0.0025": 2, "0.005": 3, "10.0": 3, "+Inf": 4}
    assert (sample("_count"), sample("_sum")) == (4, sum(durations))
    assert REGISTRY.get_sample_value(
        "encounters_http_requests_total", {"route": "/test/buckets", "method": "GET", "status": "200"}
    ) == len(durations)


def test_the_pool_gauges_are_there(client):
    samples = scrape(client)
    assert value(samples, "encounters_db_pool_max") == TEST_SETTINGS.pool_max_size
    assert 1 <= value(samples, "encounters_db_pool_connections") <= TEST_SETTINGS.pool_max_size
    assert 0 <= value(samples, "encounters_db_pool_idle") <= value(samples, "encounters_db_pool_connections")
    assert ("encounters_db_pool_waiting", frozenset()) in samples


def test_the_outbox_gauges_reflect_a_write(client, db):
    db.execute("DELETE FROM encounters.outbox")
    empty = scrape(client)
    assert value(empty, "encounters_database_up") == 1
    assert (value(empty, "encounters_outbox_waiting"), value(empty, "encounters_outbox_oldest_age_seconds")) == (0, 0)

    create(client)
    db.execute("UPDATE encounters.outbox SET created_at = created_at - interval '1 minute'")
    written = db.execute("SELECT count(*) FROM encounters.outbox WHERE published_at IS NULL").fetchone()[0]
    after = scrape(client)
    assert written >= 1
    assert value(after, "encounters_outbox_waiting") == written
    assert 60 <= value(after, "encounters_outbox_oldest_age_seconds") < 120


def test_statement_timeouts_are_counted_as_503s_by_cause(fresh_database, db):
    settings = dataclasses.replace(TEST_SETTINGS, statement_timeout_ms=300)
    with TestClient(create_app(settings, as_app(fresh_database))) as client:
        encounter = create(client)
        before = scrape(client)
        with psycopg.connect(fresh_database) as blocker:  # holds the row lock: the update waits, then times out
            blocker.execute("SELECT FROM encounters.encounter WHERE uuid = %s FOR UPDATE", [encounter["uuid"]])
            moved = client.patch(encounter_url(encounter["uuid"]), json={"location_uuid": new_uuid()}, headers=auth())
        after = scrape(client)
    assert moved.status_code == 503, moved.text
    timeouts = {"name": "encounters_http_unavailable_total", "cause": "statement_timeout"}
    assert value(after, **timeouts) - value(before, **timeouts) == 1
    assert requests(after, ENCOUNTER_ROUTE, "PATCH", 503) - requests(before, ENCOUNTER_ROUTE, "PATCH", 503) == 1


def test_a_scrape_answers_while_the_database_does_not(fresh_database, pg_server):
    settings = dataclasses.replace(TEST_SETTINGS, pool_timeout_s=0.5)
    name = psycopg.conninfo.conninfo_to_dict(fresh_database)["dbname"]
    with TestClient(create_app(settings, as_app(fresh_database))) as client:
        assert value(scrape(client), "encounters_database_up") == 1
        with psycopg.connect(server_conninfo(pg_server, "postgres"), autocommit=True) as admin:
            admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
            try:
                admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE datname = %s AND application_name = %s",
                    [name, APPLICATION_NAME],
                )
                samples = scrape(client)
            finally:
                admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
    assert value(samples, "encounters_database_up") == 0
    assert not [key for key in samples if key[0].startswith("encounters_outbox_")]
    assert requests(samples, "/metrics", "GET", 200) >= 1  # the rest is there


def test_metrics_enabled_false_answers_404_and_counts_nothing(fresh_database):
    settings = dataclasses.replace(TEST_SETTINGS, metrics_enabled=False)
    labels = {"route": "/running", "method": "GET", "status": "200"}
    before = REGISTRY.get_sample_value("encounters_http_requests_total", labels) or 0
    with TestClient(create_app(settings, as_app(fresh_database))) as client:
        assert client.get("/running").status_code == 200
        response = client.get("/metrics")
    assert response.status_code == 404 and "message" in response.json()
    assert (REGISTRY.get_sample_value("encounters_http_requests_total", labels) or 0) == before


def test_the_settings_that_restrict_metrics():
    assert (load_settings({}).metrics_enabled, load_settings({}).relay_metrics_port) == (True, None)
    assert load_settings({"METRICS_ENABLED": "false", "RELAY_METRICS_PORT": "9187"}).metrics_enabled is False
    assert load_settings({"RELAY_METRICS_PORT": "9187"}).relay_metrics_port == 9187
    for bad in ({"METRICS_ENABLED": "maybe"}, {"RELAY_METRICS_PORT": "-1"}, {"RELAY_METRICS_PORT": "http"}):
        with pytest.raises(SettingsError, match=next(iter(bad))):
            load_settings(bad)


def test_serve_refuses_a_metrics_directory_it_cannot_use_in_one_line(tmp_path, monkeypatch):
    (tmp_path / "a-file").write_text("")
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path / "a-file" / "metrics"))
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["serve"])
    assert str(exit_info.value.code).startswith("encounters-service: PROMETHEUS_MULTIPROC_DIR: ")


def _children(pid: int) -> set[int]:
    children = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # gone meanwhile
            continue
        if int(fields[1]) == pid:
            children.add(int(stat.parent.name))
    return children


def _counting_processes(directory: Path) -> set[int]:
    """The processes that have counted something: each writes counter_<pid>.db."""
    return {int(path.stem.split("_")[1]) for path in directory.glob("counter_*.db")}


def _wait_for(condition, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"{what}: not within {seconds} s"
        time.sleep(0.1)


def test_two_workers_counts_are_summed_and_the_directory_is_emptied_at_start(fresh_database, tmp_path):
    # A file left by an earlier run (its number would show if the directory were not emptied).
    stale = MmapedDict(str(tmp_path / "counter_999999.db"))
    route = ("/version", "GET", "200")  # nothing else asks for it
    labels = ("route", "method", "status")
    stale.write_value(mmap_key("encounters_http_requests", "encounters_http_requests_total", labels, route, ""), 1e6, 0)
    stale.close()
    env = {**SERVICE_ENV, "DATABASE_URL": as_app(fresh_database), "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    env["POOL_MAX_SIZE"] = "3"
    service = Service.start(env, "--workers", "2")
    try:
        service.wait_until_running()
        workers = _children(service.process.pid)
        assert len(workers) == 2, service.output()

        def scraped() -> Samples:  # a new connection each time: any worker may answer
            response = httpx.get(f"{service.base_url}/metrics")
            assert response.status_code == 200, response.text
            return parse(response.text)

        sent = 0
        # New connections until both workers have counted some (bounded; usually within the first 20).
        while sent < 40 or not workers <= _counting_processes(tmp_path):
            assert sent < 1000, f"one worker answered every request: {_counting_processes(tmp_path)}"
            assert httpx.get(f"{service.base_url}/version").status_code == 200
            sent += 1
        # Each worker publishes its tally once a second; then whichever worker answers reports the sum.
        _wait_for(lambda: requests(scraped(), *route) == sent, 5, f"{sent} requests counted")
        for _ in range(6):
            samples = scraped()
            assert requests(samples, *route) == sent
            assert value(samples, "encounters_db_pool_max") == 2 * 3

        # SIGHUP: granian replaces both workers; the counts stay, the gone workers' pool gauges do not.
        service.process.send_signal(signal.SIGHUP)
        _wait_for(lambda: len(_children(service.process.pid) - workers) == 2, 30, "two new workers")
        _wait_for(lambda: value(scraped(), "encounters_db_pool_max") == 2 * 3, 10, "the new workers' pool gauges")
        assert requests(scraped(), *route) == sent
    finally:
        service.stop()
    assert not os.path.exists(tmp_path / "counter_999999.db")
