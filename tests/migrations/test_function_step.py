"""`migrate upgrade`'s function step says what it will do before it does it, and runs within the
migrations' limits: a lock it cannot get fails the upgrade within FUNCTION_STEP_LOCK_TIMEOUT
instead of queueing the service's requests behind it."""

from __future__ import annotations

import logging
import threading
import time

import psycopg
import pytest

from encounters_service import migrate
from tests.queries.arrange import insert_encounter


def test_it_says_what_it_will_do_first(db, fresh_database, caplog):
    insert_encounter(db)
    db.execute(
        "UPDATE encounters.deployed_function SET sha256 = 'old' WHERE file_name = %s",
        (f"{migrate.DOCUMENT_RENDERER}.sql",),
    )
    with caplog.at_level(logging.INFO, logger="encounters_service.migrate"):
        migrate.apply_functions(fresh_database)
    said = [record.getMessage() for record in caplog.records]
    assert said[0] == f"function step: re-applying the {len(migrate.function_files())} files of sql/functions"
    assert said[1] == f"function step: 1 changed: {migrate.DOCUMENT_RENDERER}"
    assert (
        said[2]
        == "function step: rendering 1 stored documents (every one: the rendering changed), statement timeout 60 s"
    )
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="encounters_service.migrate"):
        migrate.apply_functions(fresh_database)
    assert [record.getMessage() for record in caplog.records][1:] == ["function step: 0 changed: none"]


def test_a_lock_it_cannot_get_fails_the_step_within_the_lock_timeout(db, fresh_database):
    insert_encounter(db)
    db.execute(
        "UPDATE encounters.deployed_function SET sha256 = 'old' WHERE file_name = %s",
        (f"{migrate.DOCUMENT_RENDERER}.sql",),
    )
    held, release = threading.Event(), threading.Event()

    def hold_the_table() -> None:
        with psycopg.connect(fresh_database) as other, other.transaction():
            other.execute("LOCK TABLE encounters.encounter IN ACCESS EXCLUSIVE MODE")
            held.set()
            release.wait(30)

    holder = threading.Thread(target=hold_the_table)
    holder.start()
    try:
        assert held.wait(10)
        started = time.monotonic()
        with pytest.raises(psycopg.errors.LockNotAvailable):
            migrate.apply_functions(fresh_database)
        assert time.monotonic() - started < 15
    finally:
        release.set()
        holder.join()
    assert db.execute(  # the step rolled back as a whole: the old checksum is still recorded
        "SELECT sha256 FROM encounters.deployed_function WHERE file_name = %s", (f"{migrate.DOCUMENT_RENDERER}.sql",)
    ).fetchone() == ("old",)
