"""Migrations: snapshot parity with sql/schema, rollback round trip, idempotent upgrades,
and the integrity rules that live in the schema itself."""

from __future__ import annotations

import difflib
import subprocess
import sys
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
import pytest

from encounters_service import migrate
from encounters_service.db import run_sync
from encounters_service.embedded import find_bindir
from encounters_service.settings import SQL_DIR
from encounters_service.sqlfiles import load_queries
from tests.conftest import create_database, drop_database, stale_documents

SCHEMA_FILES = sorted((SQL_DIR / "schema").glob("*.sql"))
MIGRATION_IDS = sorted(
    p.name.removesuffix(".sql") for p in migrate.MIGRATIONS_DIR.glob("*.sql") if not p.name.endswith(".rollback.sql")
)


@pytest.fixture
def empty_database(pg_server):
    name = f"empty_{uuid.uuid4().hex[:12]}"
    yield create_database(pg_server, name)
    drop_database(pg_server, name)


def schema_dump(conninfo: str) -> list[str]:
    """pg_dump of our two schemas (empty when they do not exist), without owners and grants (roles
    belong to the cluster; tests/sql/test_privileges.py checks them), comments, settings and
    the per-dump random \\restrict keys."""
    dumped = subprocess.run(
        [
            find_bindir() / "pg_dump",
            "--schema-only",
            "--no-owner",
            "--no-privileges",
            "-n",
            "encounters",
            "-n",
            "encounters_api",
            conninfo,
        ],
        capture_output=True,
        text=True,
    )
    if "no matching schemas were found" in dumped.stderr:
        return []
    assert dumped.returncode == 0, dumped.stderr
    noise = ("--", "SET ", "SELECT pg_catalog", "\\restrict", "\\unrestrict")
    return [line for line in dumped.stdout.splitlines() if line and not line.startswith(noise)]


def build_from_snapshot(conninfo: str, extra_sql: str = "") -> None:
    with psycopg.connect(conninfo) as conn, conn.transaction():
        for path in SCHEMA_FILES:
            conn.execute(path.read_text().encode())
        if extra_sql:
            conn.execute(extra_sql.encode())
    migrate.apply_functions(conninfo)


def schema_diff(from_migrations: list[str], from_snapshot: list[str]) -> str:
    return "\n".join(
        difflib.unified_diff(
            from_migrations, from_snapshot, "schema from migrations/", "schema from sql/schema/", lineterm=""
        )
    )


def test_snapshot_matches_migrations(template_conninfo, empty_database):
    build_from_snapshot(empty_database)
    diff = schema_diff(schema_dump(template_conninfo), schema_dump(empty_database))
    assert not diff, f"sql/schema and migrations/ disagree:\n{diff}"


def test_parity_check_reports_drift_readably(template_conninfo, empty_database):
    build_from_snapshot(empty_database, "CREATE INDEX drifted_idx ON encounters.encounter (encounter_type);")
    diff = schema_diff(schema_dump(template_conninfo), schema_dump(empty_database))
    assert "+CREATE INDEX drifted_idx ON encounters.encounter USING btree (encounter_type);" in diff


def test_upgrade_twice_changes_nothing_the_second_time(empty_database):
    assert migrate.upgrade(empty_database) == MIGRATION_IDS
    before = migrate.status(empty_database)
    assert migrate.upgrade(empty_database) == []
    after = migrate.status(empty_database)
    assert after == before
    assert after.pending == []
    assert {name for name, _, _ in after.functions} == {p.name for p in migrate.function_files()}


def test_upgrades_started_at_once_all_succeed(fresh_database):
    """Several instances started with MIGRATE_ON_START upgrade side by side: each waits its turn
    (the function step used to run outside yoyo's lock, and one in three such pairs failed)."""
    for _ in range(3):
        with ThreadPoolExecutor(max_workers=3) as pool:
            results = list(pool.map(lambda _: migrate.upgrade(fresh_database), range(3)))
        assert results == [[], [], []]


def test_rollback_to_zero_then_upgrade_again(empty_database):
    migrate.upgrade(empty_database)
    dump = schema_dump(empty_database)
    assert migrate.rollback(empty_database, steps=None) == MIGRATION_IDS[::-1]
    assert schema_dump(empty_database) == []
    assert migrate.status(empty_database).applied == []
    migrate.upgrade(empty_database)
    assert schema_dump(empty_database) == dump


def test_a_changed_function_file_is_reapplied_and_its_checksum_recorded(empty_database, tmp_path):
    migrate.upgrade(empty_database)
    deployed = {name: (sha, at) for name, sha, at in migrate.status(empty_database).functions}
    for path in migrate.function_files():
        (tmp_path / path.name).write_text(path.read_text())
    changed = tmp_path / "encounters_api.iso_utc.sql"
    changed.write_text(changed.read_text().replace('.MS"Z"', '"Z"'))

    migrate.apply_functions(empty_database, tmp_path)
    migrate.apply_functions(empty_database, tmp_path)

    with psycopg.connect(empty_database) as conn:
        rendered = conn.execute("select encounters_api.iso_utc('2018-01-01T00:00:00Z')").fetchone()[0]
    assert rendered == "2018-01-01T00:00:00Z"
    redeployed = {name: (sha, at) for name, sha, at in migrate.status(empty_database).functions}
    assert redeployed[changed.name][0] != deployed[changed.name][0]
    unchanged = set(deployed) - {changed.name}
    assert all(redeployed[name] == deployed[name] for name in unchanged)


def _admitted_at_as_stored(conninfo: str) -> list[str]:
    with psycopg.connect(conninfo) as conn:
        return [at for (at,) in conn.execute("select document ->> 'admitted_at' from encounters.encounter").fetchall()]


def test_stored_documents_are_rendered_where_missing_and_again_when_the_rendering_changes(empty_database, tmp_path):
    migrate.upgrade(empty_database)
    with psycopg.connect(empty_database) as conn:
        _insert(conn, uuid.uuid4())
        conn.execute("alter table encounters.encounter disable trigger encounter_document")
        _insert(conn, uuid.uuid4())  # as if written before 0002: no document
        conn.execute("alter table encounters.encounter enable trigger encounter_document")
    assert len(stale_documents(empty_database)) == 1

    migrate.upgrade(empty_database)
    assert stale_documents(empty_database) == []

    for path in migrate.function_files():
        (tmp_path / path.name).write_text(path.read_text())
    renderer = tmp_path / "encounters_api.iso_utc.sql"
    renderer.write_text(renderer.read_text().replace('.MS"Z"', '"Z"'))
    migrate.apply_functions(empty_database, tmp_path)
    assert stale_documents(empty_database) == []
    assert _admitted_at_as_stored(empty_database) == ["2026-01-01T00:00:00Z"] * 2


def test_rolling_back_the_document_column_keeps_the_service_working(empty_database):
    migrate.upgrade(empty_database)
    patient = uuid.uuid4()
    with psycopg.connect(empty_database) as conn:
        _insert(conn, patient)
    later = migrate.status(empty_database).applied[1:]  # every migration from 0002 on
    assert migrate.rollback(empty_database, steps=len(later))[-1] == "0002.encounter-document"
    with psycopg.connect(empty_database) as conn:
        [(latest,)] = conn.execute(
            "select count(*) from encounters_api.latest_encounter(%s, null, 'infinity')", [patient]
        ).fetchall()
    assert latest == 1  # the functions that the column's CASCADE dropped were re-applied
    migrate.upgrade(empty_database)
    assert stale_documents(empty_database) == []
    assert _admitted_at_as_stored(empty_database) == ["2026-01-01T00:00:00.000Z"]


def test_encounters_written_before_the_change_feed_come_first_in_it(empty_database):
    migrate.upgrade(empty_database)
    applied = migrate.status(empty_database).applied
    rolled_back = migrate.rollback(empty_database, steps=len(applied) - applied.index("0004.change-feed"))
    assert rolled_back[-1] == "0004.change-feed"
    with psycopg.connect(empty_database) as conn:
        _insert(conn, uuid.uuid4())
    migrate.upgrade(empty_database)
    with psycopg.connect(empty_database) as conn:
        _insert(conn, uuid.uuid4())
    with psycopg.connect(empty_database) as conn:
        [(feed,)] = run_sync(
            conn, load_queries()["encounters.changes"], after_transaction="0", after_uuid=uuid.UUID(int=0), page_size=10
        )
        positions = conn.execute(
            "SELECT changed_xid::text FROM encounters.encounter ORDER BY changed_xid NULLS FIRST"
        ).fetchall()
    assert positions[0] == (None,) and int(positions[1][0]) > 1  # none before 0004, then a transaction id
    assert len(feed["encounters"]) == 2 and feed["more"] is False


def test_functions_need_their_requirements_in_order():
    names = [path.stem for path in migrate.function_files()]
    assert names.index("encounters_api.iso_utc") < names.index("encounters_api.encounter_json")
    assert names.index("encounters_api.descendants") < names.index("encounters_api.encounter_document")
    assert names.index("encounters_api.encounter_document") < names.index("encounters_api.encounter_json")


def _insert(conn: psycopg.Connection, patient: uuid.UUID, **columns: object) -> None:
    values = {
        "admitted_at": "2026-01-01T00:00:00Z",
        "location_uuid": uuid.uuid4(),
        "patient_uuid": patient,
        "patient_record_uuid": uuid.uuid4(),
        "dh_product_uuid": uuid.uuid4(),
        "created_by": "test",
        "modified_by": "test",
        **columns,
    }
    names = ", ".join(values)
    placeholders = ", ".join(["%s"] * len(values))
    conn.execute(f"insert into encounters.encounter ({names}) values ({placeholders})", list(values.values()))


def test_raw_sql_cannot_insert_a_second_open_local_encounter(db):
    patient = uuid.uuid4()
    _insert(db, patient)
    with pytest.raises(psycopg.errors.UniqueViolation, match="encounter_one_open_local_key"):
        _insert(db, patient)
    _insert(db, patient, discharged_at="2026-01-02T00:00:00Z")  # a closed one is fine
    _insert(db, patient, epr_encounter_id="EPR-1")  # so is an EPR one


def test_raw_sql_cannot_reuse_a_live_epr_id(db):
    _insert(db, uuid.uuid4(), epr_encounter_id="EPR-7")
    with pytest.raises(psycopg.errors.UniqueViolation, match="encounter_live_epr_id_key"):
        _insert(db, uuid.uuid4(), epr_encounter_id="EPR-7")
    _insert(db, uuid.uuid4(), epr_encounter_id="EPR-8", deleted_at="2026-01-02T00:00:00Z")
    _insert(db, uuid.uuid4(), epr_encounter_id="EPR-8")  # the deleted one does not count


def test_raw_sql_cannot_store_an_empty_epr_id(db):
    with pytest.raises(psycopg.errors.CheckViolation):
        _insert(db, uuid.uuid4(), epr_encounter_id="")


def test_migration_files_come_in_pairs_with_headers():
    migrations = sorted(Path(migrate.MIGRATIONS_DIR).glob("*.sql"))
    forward = [p for p in migrations if not p.name.endswith(".rollback.sql")]
    for path in forward:
        rollback = path.with_name(path.name.replace(".sql", ".rollback.sql"))
        assert rollback.exists(), f"{path.name} has no rollback"
        for text in (path.read_text(), rollback.read_text()):
            assert text.startswith("--"), f"{path.name}: header comment missing"
            assert "lock_timeout" in text and "statement_timeout" in text


def test_migrations_are_squawk_clean():
    """squawk (test extra squawk-cli) with the repository's .squawk.toml finds nothing to report."""
    squawk = Path(sys.executable).with_name("squawk")
    linted = subprocess.run(
        [
            squawk,
            "--config",
            migrate.MIGRATIONS_DIR.parent / ".squawk.toml",
            *sorted(migrate.MIGRATIONS_DIR.glob("*.sql")),
        ],
        capture_output=True,
        text=True,
    )
    assert linted.returncode == 0, linted.stdout + linted.stderr
    assert "Found 0 issues" in linted.stdout
