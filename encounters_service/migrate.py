"""Schema upgrades: yoyo migrations, then every sql/functions file re-applied in one transaction.

yoyo only runs post-apply steps when a migration is pending, so function files are applied here,
on every upgrade, and each file's checksum is kept in encounters.deployed_function for DBAs.
In the same transaction, the stored encounter documents (encounter.document) are rendered where
missing, and all of them again when a file that renders them changed. Last, the tables' statistics
are refreshed (ANALYZE), so that a database migrated after a bulk load or a restore is planned on
statistics at once, not after autovacuum's first ANALYZE.
"""

from __future__ import annotations

import hashlib
import logging
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import psycopg
from psycopg.conninfo import conninfo_to_dict
from yoyo import get_backend, read_migrations

from encounters_service.db import run_sync
from encounters_service.embedded import start_local_postgres
from encounters_service.settings import DEFAULT_ROLES, MIGRATIONS_DIR, SQL_DIR, DatabaseRoles
from encounters_service.sqlfiles import load_queries

log = logging.getLogger(__name__)
FUNCTIONS_DIR = SQL_DIR / "functions"
DOCUMENT_RENDERER = "encounters_api.encounter_document"
# The migration that makes the roles of least privilege and encounters.grant_privileges(), which
# the function step runs after the files (new functions get the same grants) from then on.
ROLES_MIGRATION = "0009.database-roles"
# The function step's limits, as each migration's SET LOCAL: a lock it cannot get within 5 s fails
# the upgrade instead of queueing the service's requests behind it. Rendering every stored
# document gets 1 s more per thousand documents (minutes at millions of encounters).
FUNCTION_STEP_LOCK_TIMEOUT = "5s"
FUNCTION_STEP_TIMEOUT_S = 60  # what the trigger encounter_document calls


class SchemaBehind(Exception):
    """The database is not at the schema this code needs; the message says what to run."""


@dataclass(frozen=True)
class MigrationStatus:
    applied: list[str]
    pending: list[str]
    functions: list[tuple[Any, ...]]  # (file name, sha256, applied_at) as deployed
    # (kind, object, runs_as_owner, role, privileges): who may do what (sql/queries/admin/privileges.sql)
    privileges: list[tuple[Any, ...]]


def yoyo_url(conninfo: str, options: str = "") -> str:
    """A libpq conninfo (URL or key=value) as the URL yoyo wants for psycopg 3, with `options`
    (server settings, `-c name=value`) added to any it has.

    Every libpq parameter travels percent-encoded in the query string, which yoyo decodes and hands
    to psycopg.connect as it is: a password with `/`, `#`, `?`, `@`, `%` or a space, a unix-socket
    host, or an option such as sslmode arrives intact (a URL rebuilt from decoded parts broke on them).
    """
    params = conninfo_to_dict(conninfo)
    if options:
        params["options"] = f"{params.get('options') or ''} {options}".strip()
    return "postgresql+psycopg:///?" + urlencode(params)


@contextmanager
def _backend(conninfo: str, options: str = "") -> Iterator[Any]:
    """A yoyo backend whose connection is closed afterwards (a template database must have none)."""
    backend = get_backend(yoyo_url(conninfo, options))
    try:
        yield backend
    finally:
        backend.connection.close()


def upgrade(conninfo: str, roles: DatabaseRoles = DEFAULT_ROLES) -> list[str]:
    """Apply pending migrations and re-apply function files; returns the migration ids applied.
    `roles` names the roles that migration 0009 makes (and records: later upgrades read them there)."""
    migrations = read_migrations(str(MIGRATIONS_DIR))
    # The function step under yoyo's lock too: two upgrades at once (several instances started
    # with MIGRATE_ON_START) would otherwise replace the same functions side by side and one of
    # them fail ("tuple concurrently updated").
    with _backend(conninfo, roles.migration_options()) as backend, backend.lock():
        pending = backend.to_apply(migrations)
        backend.apply_migrations(pending)
        apply_functions(conninfo)
    analyze(conninfo)
    return [m.id for m in pending]


def analyze(conninfo: str) -> None:
    """ANALYZE every table of the service's schema (sql/queries/admin/analyze.sql)."""
    with psycopg.connect(conninfo, autocommit=True) as conn:
        run_sync(conn, load_queries()["admin.analyze"])


def rollback(conninfo: str, *, steps: int | None = 1) -> list[str]:
    """Roll back the last `steps` migrations (None: all of them); returns the ids rolled back."""
    migrations = read_migrations(str(MIGRATIONS_DIR))
    with _backend(conninfo) as backend, backend.lock():
        applied = backend.to_rollback(migrations)
        chosen = applied if steps is None else applied[:steps]
        backend.rollback_migrations(chosen)
        if len(applied) > len(chosen):  # a rollback may drop functions that depend on what it removes
            remaining = {m.id for m in applied[len(chosen) :]}
            # the older schema may keep no documents, nor roles
            apply_functions(conninfo, render=False, grant=ROLES_MIGRATION in remaining)
    return [m.id for m in chosen]


def status(conninfo: str) -> MigrationStatus:
    migrations = read_migrations(str(MIGRATIONS_DIR))
    with _backend(conninfo) as backend:
        pending = {m.id for m in backend.to_apply(migrations)}
    functions: list[tuple[Any, ...]] = []
    privileges: list[tuple[Any, ...]] = []
    if len(pending) < len(migrations):
        with psycopg.connect(conninfo) as conn:
            functions = run_sync(conn, load_queries()["admin.deployed_functions"])
            privileges = run_sync(conn, load_queries()["admin.privileges"])
    return MigrationStatus(
        applied=[m.id for m in migrations if m.id not in pending],
        pending=[m.id for m in migrations if m.id in pending],
        functions=functions,
        privileges=privileges,
    )


_REQUIRES = re.compile(r"^-- requires:(.*)$", re.MULTILINE)


def _requirements(directory: Path) -> dict[str, list[str]]:
    """Each function file's stem and the stems its `-- requires:` header names."""
    return {
        path.stem: [
            name.strip() for line in _REQUIRES.findall(path.read_text()) for name in line.split(",") if name.strip()
        ]
        for path in sorted(directory.glob("*.sql"))
    }


def function_files(directory: Path = FUNCTIONS_DIR) -> list[Path]:
    """Function files, each after the files its `-- requires:` header names.

    Bodies in SQL-standard form (BEGIN ATOMIC) are bound when created, so what they call must
    exist first.
    """
    requirements = _requirements(directory)
    ordered: list[str] = []

    def visit(name: str, chain: tuple[str, ...]) -> None:
        if name in ordered:
            return
        if name in chain or name not in requirements:
            raise ValueError(f"sql/functions: cannot order {' -> '.join((*chain, name))}")
        for required in requirements[name]:
            visit(required, (*chain, name))
        ordered.append(name)

    for name in requirements:
        visit(name, ())
    return [directory / f"{name}.sql" for name in ordered]


def _closure(name: str, requirements: dict[str, list[str]]) -> set[str]:
    """`name` and every file it requires, directly or not."""
    found = {name}
    for required in requirements.get(name, []):
        found |= _closure(required, requirements)
    return found


def apply_functions(conninfo: str, directory: Path = FUNCTIONS_DIR, *, render: bool = True, grant: bool = True) -> None:
    """CREATE OR REPLACE every function file in one transaction, record changed checksums, (with
    `grant`) give every function its owner and grants (encounters.grant_privileges, migration 0009),
    and (with `render`) render the encounter documents that are missing or were rendered by a
    changed file. Within the migrations' limits (FUNCTION_STEP_*), saying what it does first."""
    queries = load_queries()
    files = function_files(directory)
    with psycopg.connect(conninfo) as conn, conn.transaction():
        limits = queries["admin.function_step_timeouts"]
        run_sync(conn, limits, lock_timeout=FUNCTION_STEP_LOCK_TIMEOUT, statement_timeout=f"{FUNCTION_STEP_TIMEOUT_S}s")
        log.info("function step: re-applying the %d files of sql/functions", len(files))
        changed = set()
        for path in files:
            text = path.read_text()
            conn.execute(text.encode())
            checksum = hashlib.sha256(text.encode()).hexdigest()
            if run_sync(conn, queries["admin.record_function"], file_name=path.name, sha256=checksum):
                changed.add(path.stem)
        log.info("function step: %d changed: %s", len(changed), ", ".join(sorted(changed)) or "none")
        if grant:
            run_sync(conn, queries["admin.grant_privileges"])
        if render:
            every = bool(changed & _closure(DOCUMENT_RENDERER, _requirements(directory)))
            [(to_render,)] = run_sync(conn, queries["admin.documents_to_render"], every=every)
            if to_render:
                budget_s = FUNCTION_STEP_TIMEOUT_S + to_render // 1000  # 100-200 µs each, measured
                log.info(
                    "function step: rendering %d stored documents (%s), statement timeout %d s",
                    to_render,
                    "every one: the rendering changed" if every else "the missing ones",
                    budget_s,
                )
                run_sync(conn, limits, lock_timeout=FUNCTION_STEP_LOCK_TIMEOUT, statement_timeout=f"{budget_s}s")
                run_sync(conn, queries["admin.render_documents"], every=every)


def require_current(conninfo: str) -> None:
    """Raise SchemaBehind unless every migration is applied and every function file is deployed as
    it is now (`serve` and `relay` check before they start: on an unmigrated database every route
    would fail). Reads only: yoyo's bookkeeping is read with SQL, not created."""
    queries = load_queries()
    with psycopg.connect(conninfo) as conn:
        try:
            applied = {migration_id for migration_id, _ in run_sync(conn, queries["admin.applied_migrations"])}
        except psycopg.errors.UndefinedTable:
            applied = set()
        conn.rollback()
        try:
            deployed = {name: checksum for name, checksum, _ in run_sync(conn, queries["admin.deployed_functions"])}
        except psycopg.errors.UndefinedTable:
            deployed = {}
    pending = [m.id for m in read_migrations(str(MIGRATIONS_DIR)) if m.id not in applied]
    stale = [
        path.name
        for path in function_files()
        if deployed.get(path.name) != hashlib.sha256(path.read_text().encode()).hexdigest()
    ]
    if pending or stale:
        behind = [f"pending migration {name}" for name in pending] + [f"function file {name}" for name in stale]
        more = f" and {len(behind) - 3} more" if len(behind) > 3 else ""
        raise SchemaBehind(
            f"the database is not at this version's schema ({', '.join(behind[:3])}{more}): "
            "run `encounters-service migrate upgrade` first"
        )


def role_warning(conninfo: str) -> str | None:
    """What is wrong with the role `serve` or `relay` is connected as, if anything: a superuser or
    the owner may change the schema; the app role (migration 0009) may not."""
    with psycopg.connect(conninfo) as conn:
        [(connected_as, superuser, owner_role, app_role, has_owner_privileges)] = run_sync(
            conn, load_queries()["admin.connected_role"]
        )
    if not superuser and not has_owner_privileges:
        return None
    what = "a superuser" if superuser else f"with the privileges of {owner_role}, which owns the schema"
    return (
        f"connected to the database as {connected_as}, {what}: connect as {app_role} instead, which may "
        "read and call the encounters_api functions but not change the schema or write a table itself "
        "(MIGRATION_DATABASE_URL is for the owner; docs/dba.md)"
    )


@contextmanager
def scratch_database(prefix: str) -> Iterator[str]:
    """Conninfo of a throwaway PostgreSQL (the system's binaries, as `serve` runs them) that this
    checkout's migrations and functions have just built, removed on exit: never a database in use
    (for the generated docs and the PL/pgSQL lint)."""
    data_dir = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        with start_local_postgres(data_dir) as pg:
            upgrade(pg.conninfo)
            yield pg.conninfo
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
