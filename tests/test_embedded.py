import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import port_for
import psycopg
import pytest

from encounters_service import cli
from encounters_service.embedded import (
    EmbeddedPostgresError,
    find_bindir,
    local_database_url,
    start_local_postgres,
    start_local_standby,
    wait_until_replayed,
)


@pytest.fixture
def data_dir() -> Iterator[Path]:
    # Not tmp_path: it is 0700 root, and as root the server runs as `postgres`, which must traverse it.
    path = Path(tempfile.mkdtemp(dir="/dev/shm"))
    path.chmod(0o755)
    yield path / "data"
    shutil.rmtree(path)


def test_data_survives_a_restart(data_dir: Path) -> None:
    with start_local_postgres(data_dir) as pg:
        assert pg.conninfo.endswith("/encounters")
        with psycopg.connect(pg.conninfo) as conn:
            assert conn.execute("select 1").fetchone() == (1,)
            conn.execute("create table kept (note text)")
            conn.execute("insert into kept values ('still here')")
    assert not pg.running()

    with start_local_postgres(data_dir) as pg, psycopg.connect(pg.conninfo) as conn:
        assert conn.execute("select note from kept").fetchall() == [("still here",)]


def test_missing_binaries_say_how_to_get_them(tmp_path: Path) -> None:
    with pytest.raises(EmbeddedPostgresError, match="apt-get install -y postgresql"):
        find_bindir(search_roots=[tmp_path / "nowhere"], path="")


def test_the_local_server_keeps_its_port_and_says_where_it_is(data_dir: Path, capsys) -> None:
    """Its URL does not change from run to run (`serve` asks for DEFAULT_PORT; another port only
    when that one is taken), and `encounters-service dburl` prints it while it runs."""
    port = port_for.select_random()
    for _ in range(2):
        with start_local_postgres(data_dir, port) as pg:
            assert pg.port == port
            assert (data_dir / "database_url").read_text().strip() == pg.conninfo
            cli.main(["dburl", "--data-dir", str(data_dir)])
            assert capsys.readouterr().out.strip() == pg.conninfo
    with pytest.raises(SystemExit, match="no local database is running"):
        cli.main(["dburl", "--data-dir", str(data_dir)])


def test_a_taken_port_falls_back_to_a_free_one(data_dir: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with start_local_postgres(data_dir, port) as pg:
            assert pg.port != port
            assert local_database_url(data_dir) == pg.conninfo


def test_a_local_standby_streams_from_its_primary(data_dir: Path) -> None:
    """The bench's and the tests' standby: a hot standby (read-only) that replays the primary's
    writes, named on the primary by its slot name."""
    with start_local_postgres(data_dir, port_for.select_random()) as pg:
        standby = start_local_standby("127.0.0.1", pg.port, data_dir.parent / "standby", "replica1")
        try:
            with psycopg.connect(pg.conninfo, autocommit=True) as conn:
                conn.execute("create table kept as select 'streamed' as note")
                [(name,)] = conn.execute("select application_name from pg_stat_replication").fetchall()
            assert name == "replica1"
            wait_until_replayed(pg.conninfo, standby)
            assert standby.sql("select note, pg_is_in_recovery() from kept") == [("streamed", True)]
        finally:
            standby.stop("immediate")
