import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from encounters_service.embedded import EmbeddedPostgresError, find_bindir, start_local_postgres


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

    with start_local_postgres(data_dir) as pg:
        with psycopg.connect(pg.conninfo) as conn:
            assert conn.execute("select note from kept").fetchall() == [("still here",)]


def test_missing_binaries_say_how_to_get_them(tmp_path: Path) -> None:
    with pytest.raises(EmbeddedPostgresError, match="apt-get install -y postgresql"):
        find_bindir(search_roots=[tmp_path / "nowhere"], path="")
