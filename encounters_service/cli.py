"""encounters-service serve | migrate {upgrade,rollback,status} | token | dburl | relay"""

from __future__ import annotations

import argparse
import ctypes
import json
import logging
import os
import resource
import sys
import tempfile
import uuid
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg

from encounters_service import migrate
from encounters_service.auth import READ_SCOPE, WRITE_SCOPE, mint_token
from encounters_service.db import PIECE_BYTES
from encounters_service.embedded import URL_FILE, EmbeddedPostgresError, local_database_url, start_local_postgres
from encounters_service.logs import configure_logging
from encounters_service.settings import Settings, SettingsError, load_settings

if TYPE_CHECKING:
    from granian.server.mp import MPServer
    from granian.server.mt import MTServer

log = logging.getLogger("encounters_service")
DEFAULT_WORKERS = 2  # measured: see docs/performance.md
FILES_RESERVED = 256  # per worker, besides its HTTP connections: database pool, logs, the listener


@dataclass(frozen=True)
class Databases:
    service: str  # what `serve` and `relay` connect as: the app role
    migrations: str  # what `migrate` connects as: the owner (or a superuser, for migration 0009)


def _databases(settings: Settings, stack: ExitStack) -> Databases:
    """The configured database (MIGRATION_DATABASE_URL for the migrations, when given), or a
    local PostgreSQL started (and later stopped) for this run: migrated as its superuser, served
    as the app role."""
    if settings.database_url or settings.migration_database_url:
        service = settings.database_url or settings.migration_database_url or ""
        return Databases(service, settings.migration_database_url or service)
    if not settings.local_database:
        raise SettingsError(
            "no database is configured: set DATABASE_URL, or DATABASE_HOST (with DATABASE_PORT, DATABASE_USER, "
            "DATABASE_PASSWORD, DATABASE_NAME as needed)"
        )
    local = stack.enter_context(start_local_postgres(settings.data_dir))
    return Databases(local.conninfo_as(settings.database_roles.app), local.conninfo)


def _warn_about_role(conninfo: str) -> None:
    """Once, at start (`serve`, `relay`): a superuser or the owner is more than the service needs."""
    if warning := migrate.role_warning(conninfo):
        log.warning(warning)


def _claim(text: str) -> tuple[str, object]:
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"--claim takes key=value, got {text!r}")
    try:
        return key, json.loads(raw)  # true, 2, "x" keep their JSON types
    except json.JSONDecodeError:
        return key, raw


def _metrics_directory(stack: ExitStack) -> None:
    """PROMETHEUS_MULTIPROC_DIR for the server's workers (encounters_service/metrics.py): as given
    (a directory of this service's own), else a temporary one removed on exit; emptied first, so that
    a scrape counts this run only. Before anything imports prometheus_client: it reads it at import."""
    given = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    directory = Path(given or stack.enter_context(tempfile.TemporaryDirectory(prefix="encounters-metrics-")))
    try:
        directory.mkdir(parents=True, exist_ok=True)
        for stale in directory.glob("*.db"):
            stale.unlink()
    except OSError as error:
        raise SettingsError(f"PROMETHEUS_MULTIPROC_DIR: {error}") from None
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(directory)


def cmd_serve(args: argparse.Namespace, settings: Settings) -> None:
    settings = settings.with_overrides(host=args.host, port=args.port, data_dir=args.data_dir)
    if warning := settings.weak_key_warning:
        log.warning(warning)
    with ExitStack() as stack:
        _metrics_directory(stack)
        from encounters_service.app import RELAY_ENV

        databases = _databases(settings, stack)
        if settings.should_migrate_on_start:
            applied = migrate.upgrade(databases.migrations, settings.database_roles)
            log.info("migrations applied: %s", ", ".join(applied) or "none pending")
        conninfo = databases.service
        migrate.require_current(conninfo)
        _warn_about_role(conninfo)
        if settings.embedded:
            _print_welcome(settings, conninfo)
        # Each worker process builds its app from the environment (app_from_env).
        os.environ["DATABASE_URL"] = conninfo
        os.environ[RELAY_ENV] = "1" if args.relay else ""
        # Granian stops its workers gracefully on SIGTERM/SIGINT and returns; the ExitStack then
        # stops the local PostgreSQL, and the command exits 0.
        http_server("encounters_service.app:app_from_env", settings, workers=args.workers).serve()


def http_server(app_factory: str, settings: Settings, *, workers: int) -> MPServer | MTServer:
    """The HTTP server of `serve` (also what bench/bare_app.py runs): each worker process calls
    `app_factory` ("module:function") for its ASGI app.

    HTTP/1.1 only: granian's HTTP/1-or-2 detection reads a new connection's first bytes without any
    timeout, so a connection that sent nothing was held for ever. With HTTP/1 alone, the header
    read timeout (HTTP_IDLE_TIMEOUT_SECONDS) runs from the connection's start and again after each
    answer: silent, slow-header and idle keep-alive connections are all closed after it. The body
    has its own limit, in the app (encounters_service/guards.py)."""
    return_freed_memory()  # before granian is loaded, and forks the workers
    from granian import Granian
    from granian.constants import HTTPModes, Interfaces
    from granian.http import HTTP1Settings
    from granian.log import LogLevels

    return Granian(
        app_factory,
        factory=True,
        interface=Interfaces.ASGI,
        address=settings.host,
        port=settings.port,
        workers=workers,
        http=HTTPModes.http1,
        http1_settings=HTTP1Settings(header_read_timeout=round(settings.http_idle_timeout_s * 1000)),
        # Granian's "backpressure" is the number of connections a worker holds open at once; at that
        # many it stops accepting until one closes (new ones wait in the listen queue).
        backpressure=connections_per_worker(settings.http_max_connections, workers),
        log_access=False,  # the request log line replaces it
        log_level=LogLevels(settings.log_level.lower()),
        log_dictconfig={"loggers": {"_granian": {"propagate": True}}},  # through our handler and format
        workers_kill_timeout=10,
    )


# What the census leaves behind (issue 17; bench/bench.py, PSS of the server's processes after 8
# clients on the census): each census allocates blocks that add up to its answer (4 MB), and two
# allocators kept them once freed. Both are told to return such memory to the system at once:
# - glibc (Python's objects, libpq): by default its mmap threshold rises to the size of the largest
#   block freed (up to 32 MiB), so after the first census the answer's blocks came from the heap,
#   and stayed there, scattered, once freed. Fixed at PIECE_BYTES (db.py: the census arrives in
#   pieces of that size), each piece and anything larger is mapped, and unmapped when freed.
# - jemalloc (granian's own, which copies each answer): freed pages decay over 10 s by default, but
#   only while the allocator is used, so an idle server kept them; returned at once here (a
#   background thread for the decay does not survive granian's fork of the workers).
# Measured after the census (issue 17), with the pieces: 171 MB PSS with a 1 MiB threshold instead
# (the 64 KB pieces stayed scattered in the heap), 149 MB with this one; jemalloc's default decay
# kept 22 MB more (measured without the pieces). An operator's own MALLOC_MMAP_THRESHOLD_ or _RJEM_MALLOC_CONF wins.
M_MMAP_THRESHOLD = -3  # glibc's malloc.h
JEMALLOC_CONF = "dirty_decay_ms:0,muzzy_decay_ms:0"


def return_freed_memory() -> None:
    """Allocator settings of this process and of the ones it forks (read at load by granian's
    jemalloc, so set before granian is imported)."""
    os.environ.setdefault("_RJEM_MALLOC_CONF", JEMALLOC_CONF)
    if "MALLOC_MMAP_THRESHOLD_" not in os.environ:
        mallopt = getattr(ctypes.CDLL(None), "mallopt", None)  # glibc, musl; not macOS
        if mallopt is not None:
            mallopt(M_MMAP_THRESHOLD, PIECE_BYTES)


def connections_per_worker(max_connections: int, workers: int) -> int:
    """HTTP_MAX_CONNECTIONS shared out among the workers, within the open-file limit of a process
    (the soft limit is raised towards the hard one if need be): past that limit a worker's accept
    fails (EMFILE) and granian retries it in a loop, which stalls everyone."""
    wanted = -(-max_connections // workers)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = wanted + FILES_RESERVED
    if soft != resource.RLIM_INFINITY and soft < needed:
        soft = needed if hard == resource.RLIM_INFINITY else min(hard, needed)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    if soft != resource.RLIM_INFINITY and soft < needed:
        log.warning("open-file limit %d: %d connections per worker instead of %d", soft, soft - FILES_RESERVED, wanted)
        return max(1, soft - FILES_RESERVED)
    return wanted


def _print_welcome(settings: Settings, conninfo: str) -> None:
    base = f"http://{settings.host}:{settings.port}"
    if settings.log_format == "json":  # every line of the output is a JSON record, and no token is logged
        fields = {"database_url": conninfo, "url": base}
        log.info(
            "local database ready; `encounters-service token` mints a token for local use", extra={"fields": fields}
        )
        return
    token = mint_token(settings, scopes=[READ_SCOPE, WRITE_SCOPE], claims={"clinician_id": "local-user"})
    print(
        f"\nLocal PostgreSQL in {settings.data_dir}, at {conninfo}\n"
        f'  (for psql: psql "$(encounters-service dburl)"; the URL is also in {settings.data_dir}/{URL_FILE})\n'
        f"Serving on {base}\n"
        f"A token for local use (read and write, valid 1 hour):\n\n  export TOKEN={token}\n\n"
        f"  curl -H \"Authorization: Bearer $TOKEN\" '{base}/dhos/v2/encounter?patient_id={uuid.uuid4()}'\n",
        flush=True,
    )


def cmd_migrate(args: argparse.Namespace, settings: Settings) -> None:
    with ExitStack() as stack:
        conninfo = _databases(settings.with_overrides(data_dir=args.data_dir), stack).migrations
        if args.action == "upgrade":
            applied = migrate.upgrade(conninfo, settings.database_roles)
            print(f"applied: {', '.join(applied) or 'nothing pending'}; function files re-applied")
        elif args.action == "rollback":
            undone = migrate.rollback(conninfo, steps=None if args.all else args.steps)
            print(f"rolled back: {', '.join(undone) or 'nothing'}")
        else:
            state = migrate.status(conninfo)
            for migration_id in state.applied:
                print(f"applied  {migration_id}")
            for migration_id in state.pending:
                print(f"pending  {migration_id}")
            for file_name, checksum, applied_at in state.functions:
                print(f"function {file_name} sha256={checksum[:12]} applied_at={applied_at:%Y-%m-%d %H:%M:%S%z}")
            # Who may do what, for a DBA to review (docs/dba.md): one line per role and object.
            for kind, name, runs_as_owner, role, privileges in state.privileges:
                print(f"grant    {role} {kind} {name}: {privileges}{' (runs as its owner)' if runs_as_owner else ''}")


def cmd_dburl(args: argparse.Namespace, settings: Settings) -> None:
    """The service's database URL: the configured one, else the running local server's."""
    if settings.database_url:
        print(settings.database_url)
        return
    data_dir = args.data_dir or settings.data_dir
    url = local_database_url(data_dir)
    if url is None:
        raise SettingsError(
            f"no local database is running in {data_dir}: start it with `encounters-service serve` (make run)"
        )
    print(url)


def cmd_token(args: argparse.Namespace, settings: Settings) -> None:
    claims = dict(args.claim or [("clinician_id", "local-user")])
    print(
        mint_token(settings, scopes=args.scope or [READ_SCOPE, WRITE_SCOPE], claims=claims, expires_in=args.expires_in)
    )


def cmd_relay(args: argparse.Namespace, settings: Settings) -> None:
    import asyncio

    from encounters_service.relay import run_until_signalled

    if settings.database_url is None:  # the local database
        raise SettingsError(
            "the relay needs the service's database: set DATABASE_URL (or DATABASE_HOST, ...); "
            "with the local database, run `encounters-service serve --relay` instead"
        )
    migrate.require_current(settings.database_url)
    _warn_about_role(settings.database_url)
    if settings.relay_metrics_port:
        from prometheus_client import start_http_server

        from encounters_service.metrics import RELAY_REGISTRY

        start_http_server(settings.relay_metrics_port, addr=settings.host, registry=RELAY_REGISTRY)
    asyncio.run(run_until_signalled(settings, settings.database_url))


def default_workers() -> int:
    return int(os.environ.get("WEB_CONCURRENCY") or DEFAULT_WORKERS)


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="encounters-service", description=__doc__)
    commands = root.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the HTTP service (local PostgreSQL when no database is configured)")
    serve.add_argument("--host", help="listen address (env HOST, default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="listen port (env PORT, default 5000)")
    serve.add_argument("--data-dir", type=Path, help="local PostgreSQL data dir (env ENCOUNTERS_DATA_DIR)")
    serve.add_argument(
        "--relay", action="store_true", help="also publish the event outbox from this process (default off)"
    )
    serve.add_argument(
        "--workers",
        type=int,
        default=default_workers(),
        help=f"server worker processes (env WEB_CONCURRENCY, default {DEFAULT_WORKERS}; see docs/performance.md)",
    )
    serve.set_defaults(run=cmd_serve)

    migration = commands.add_parser("migrate", help="upgrade, roll back or show the database schema")
    migration.add_argument("action", choices=["upgrade", "rollback", "status"])
    migration.add_argument("--steps", type=int, default=1, help="rollback: how many migrations (default 1)")
    migration.add_argument("--all", action="store_true", help="rollback: every migration (drops all data)")
    migration.add_argument("--data-dir", type=Path, help="local PostgreSQL data dir when no database is configured")
    migration.set_defaults(run=cmd_migrate)

    token = commands.add_parser("token", help="mint a token for local use (signed with HS_KEY)")
    token.add_argument("--scope", action="append", help=f"repeatable; default {READ_SCOPE} and {WRITE_SCOPE}")
    token.add_argument("--claim", action="append", type=_claim, help="custom claim key=value (repeatable)")
    token.add_argument("--expires-in", type=int, default=3600, help="seconds (default 3600)")
    token.set_defaults(run=cmd_token)

    dburl = commands.add_parser("dburl", help="print the database URL (the local server's while `serve` runs it)")
    dburl.add_argument("--data-dir", type=Path, help="local PostgreSQL data dir (env ENCOUNTERS_DATA_DIR)")
    dburl.set_defaults(run=cmd_dburl)

    relay = commands.add_parser("relay", help="publish the event outbox to RabbitMQ until stopped (needs DATABASE_URL)")
    relay.set_defaults(run=cmd_relay)
    return root


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    try:
        settings = load_settings()
        configure_logging(settings.log_level, settings.log_format)
        args.run(args, settings)
    except (SettingsError, EmbeddedPostgresError, migrate.SchemaBehind) as error:
        sys.exit(f"encounters-service: {error}")
    except psycopg.errors.InsufficientPrivilege as error:  # e.g. `migrate` as the app role
        sys.exit(
            f"encounters-service: the database refused: {error}; the migrations run as the owner role "
            "(MIGRATION_DATABASE_URL, see docs/dba.md)"
        )
    except psycopg.OperationalError as error:  # libpq's message names no password
        sys.exit(f"encounters-service: cannot connect to the database: {' '.join(str(error).split())}")
