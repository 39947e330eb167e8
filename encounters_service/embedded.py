"""Zero-config database: the system PostgreSQL binaries run on a private data dir on localhost."""

from __future__ import annotations

import logging
import os
import pwd
import shlex
import shutil
import socket
import subprocess
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

log = logging.getLogger(__name__)

DATABASE = "encounters"
# The local server's port, kept from run to run so that its URL does not change; another one only
# when this one is taken. 5432 is left to a system PostgreSQL.
DEFAULT_PORT = 54320
URL_FILE = "database_url"  # in the data directory: the running local server's URL, for analysts
SEARCH_ROOTS = (Path("/usr/lib/postgresql"),)
NOT_FOUND = (
    "PostgreSQL server binaries (initdb, pg_ctl) were not found. Install them "
    "(Debian/Ubuntu: `apt-get install -y postgresql`; macOS: `brew install postgresql@15`) "
    "or set DATABASE_URL to use an existing server."
)


class EmbeddedPostgresError(RuntimeError):
    """The local PostgreSQL could not be found or started; the message says what to do."""


@dataclass(frozen=True)
class LocalPostgres:
    bindir: Path
    pgdata: Path
    port: int

    @property
    def conninfo(self) -> str:
        """As the cluster's superuser: the migrations run as it (migration 0009 makes the roles)."""
        return self.conninfo_as("postgres")

    def conninfo_as(self, role: str) -> str:
        """As `role`: initdb --auth=trust lets every role log in on loopback, with no password
        (the owner, app and analyst roles of migration 0009 have none)."""
        return f"postgresql://{role}@127.0.0.1:{self.port}/{DATABASE}"

    def running(self) -> bool:
        return _run(self.bindir / "pg_ctl", "status", "-D", self.pgdata, check=False).returncode == 0

    def stop(self) -> None:
        """Fast shutdown (open transactions are rolled back); a no-op if the server is not running."""
        if self.running():
            _run(self.bindir / "pg_ctl", "stop", "-D", self.pgdata, "-m", "fast", "-w")

    def __enter__(self) -> LocalPostgres:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def find_bindir(search_roots: Iterable[Path] = SEARCH_ROOTS, path: str | None = None) -> Path:
    """`pg_config --bindir`, else the newest <root>/<version>/bin, else initdb's directory on PATH.

    `path` is searched instead of $PATH when given, as in shutil.which.
    """
    candidates = []
    if pg_config := shutil.which("pg_config", path=path):
        # Debian's pg_config comes with libpq-dev too, so its bindir may lack the server binaries.
        bindir = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True).stdout.strip()
        candidates += [Path(bindir)] if bindir else []
    for root in search_roots:
        candidates += sorted(root.glob("*/bin"), key=_version, reverse=True)
    if initdb := shutil.which("initdb", path=path):
        candidates.append(Path(initdb).resolve().parent)  # a symlink's target dir also holds pg_ctl
    for candidate in candidates:
        if (candidate / "initdb").is_file() and (candidate / "pg_ctl").is_file():
            return candidate
    raise EmbeddedPostgresError(NOT_FOUND)


def start_local_postgres(data_dir: Path, port: int = DEFAULT_PORT, socket_dir: Path | None = None) -> LocalPostgres:
    """Start PostgreSQL on data_dir (initialised on first use) on `port`, or a free port if it is
    taken; create the database; write its URL to data_dir/database_url. With `socket_dir` (a short
    path the server's user may write to), it also listens on a unix socket there: reachable from
    another network namespace (bench/shaped_link_bench.py)."""
    bindir = find_bindir()
    data_dir = data_dir.resolve()
    pgdata, logfile = data_dir / "pgdata", data_dir / "postgres.log"
    data_dir.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        _hand_over_to_postgres_user(data_dir)
    if not (pgdata / "PG_VERSION").exists():
        _initdb(bindir, pgdata)
    LocalPostgres(bindir, pgdata, port).stop()  # a server left running by an earlier run
    pg = LocalPostgres(bindir, pgdata, port if _port_is_free(port) else _free_port())
    # TCP only by default: a unix socket path inside a deep data dir can exceed the 107-byte limit.
    options = f"-p {pg.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories='{socket_dir or ''}'"
    started = _run(
        bindir / "pg_ctl", "start", "-w", "-t", "60", "-D", pgdata, "-l", logfile, "-o", options, check=False
    )
    if started.returncode != 0:
        tail = "\n".join(logfile.read_text(errors="replace").splitlines()[-5:]) if logfile.exists() else started.stderr
        raise EmbeddedPostgresError(f"PostgreSQL did not start; the end of {logfile}:\n{tail}")
    log.info("Local PostgreSQL listening on 127.0.0.1:%d, data in %s", pg.port, data_dir)
    try:
        with psycopg.connect(f"postgresql://postgres@127.0.0.1:{pg.port}/postgres", autocommit=True) as conn:
            if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)).fetchone():
                conn.execute(f"CREATE DATABASE {DATABASE}")
    except BaseException:
        pg.stop()
        raise
    (data_dir / URL_FILE).write_text(pg.conninfo + "\n")
    return pg


@dataclass(frozen=True)
class LocalStandby:
    """A hot standby streaming from a primary (pg_basebackup -R, its own replication slot), on
    loopback, driven with pg_ctl: what docs/deploying.md describes, small enough for a test or the
    bench (it starts in about a second)."""

    name: str  # its replication slot, and its application_name on the primary (cluster_name)
    bindir: Path
    directory: Path  # holds data/ and postgresql.log
    port: int
    options: str  # postgres -c settings
    dbname: str = DATABASE  # of conninfo() and sql()

    @property
    def datadir(self) -> Path:
        return self.directory / "data"

    def conninfo(self, dbname: str | None = None) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname or self.dbname}"

    def start(self) -> None:
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories='' {self.options}"
        log = self.directory / "postgresql.log"
        _run(self.bindir / "pg_ctl", "start", "-w", "-t", "60", "-D", self.datadir, "-o", options, "-l", log)
        _wait_for_logins(self.conninfo("postgres"))

    def stop(self, mode: str = "fast") -> None:
        """A no-op if it is not running."""
        _run(self.bindir / "pg_ctl", "stop", "-w", "-D", self.datadir, "-m", mode, check=False)

    def promote(self) -> None:
        """What an HA manager does when the primary is gone: end recovery, accept writes."""
        _run(self.bindir / "pg_ctl", "promote", "-w", "-D", self.datadir)

    def sql(self, statement: str, *params: object) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.conninfo(), autocommit=True) as conn:
            return conn.execute(statement, params or None).fetchall()


def start_local_standby(
    primary_host: str, primary_port: int, directory: Path, name: str, *, port: int | None = None,
    options: str = "", dbname: str = DATABASE,
) -> LocalStandby:  # fmt: skip
    """A new hot standby of the primary at primary_host:primary_port (which must let `postgres`
    connect for replication, as initdb's pg_hba.conf does on loopback), in `directory`, streaming
    through the replication slot `name`; running."""
    bindir = find_bindir()
    directory.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        _hand_over_to_postgres_user(directory)
    standby = LocalStandby(name, bindir, directory.resolve(), port or _free_port(), options, dbname)
    _run(
        bindir / "pg_basebackup", "-h", primary_host, "-p", primary_port, "-U", "postgres", "-D", standby.datadir,
        "-R", "-X", "stream", "--checkpoint=fast", "-C", "-S", name,
    )  # fmt: skip
    # Named on the primary (pg_stat_replication.application_name, synchronous_standby_names) by this.
    with (standby.datadir / "postgresql.auto.conf").open("a") as conf:
        conf.write(f"cluster_name = '{name}'\n")
    standby.start()
    return standby


def wait_until_replayed(primary_conninfo: str, standby: LocalStandby, seconds: float = 30) -> None:
    """Until the standby has replayed everything the primary has written so far."""
    with psycopg.connect(primary_conninfo, autocommit=True) as conn:
        [(target,)] = conn.execute("SELECT pg_current_wal_lsn()").fetchall()
    deadline = time.monotonic() + seconds
    while not standby.sql("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", target)[0][0]:
        if time.monotonic() > deadline:
            raise TimeoutError(f"standby {standby.name} did not replay up to {target}")
        time.sleep(0.02)


def _wait_for_logins(conninfo: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            psycopg.connect(conninfo).close()
            return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def local_database_url(data_dir: Path) -> str | None:
    """The URL of the local server last started on data_dir, if it is running."""
    url_file = data_dir.resolve() / URL_FILE
    if not url_file.exists():
        return None
    url = url_file.read_text().strip()
    try:
        psycopg.connect(url, connect_timeout=2).close()
    except psycopg.OperationalError:
        return None
    return url


def _run(program: Path | str, *args: object, check: bool = True) -> subprocess.CompletedProcess[str]:
    command = [str(program), *map(str, args)]
    if os.geteuid() == 0:  # initdb and pg_ctl refuse to run as root
        command = ["runuser", "-u", "postgres", "--", *command]
    result = subprocess.run(command, capture_output=True, text=True)
    if check and result.returncode != 0:
        raise EmbeddedPostgresError(f"{shlex.join(command)} failed:\n{result.stdout}{result.stderr}")
    return result


def _hand_over_to_postgres_user(data_dir: Path) -> None:
    try:
        user = pwd.getpwnam("postgres")
    except KeyError:
        raise EmbeddedPostgresError("Running as root needs a `postgres` system user to run PostgreSQL as") from None
    subprocess.run(["chown", "-R", f"{user.pw_uid}:{user.pw_gid}", str(data_dir)], check=True)
    if _run("test", "-w", data_dir, check=False).returncode != 0:
        raise EmbeddedPostgresError(
            f"The postgres user cannot reach {data_dir}: a parent directory is not traversable by it. "
            "Point ENCOUNTERS_DATA_DIR (or --data-dir) at a directory it can reach, e.g. /var/tmp/encounters-data."
        )


def _initdb(bindir: Path, pgdata: Path) -> None:
    args = ["-D", pgdata, "--auth=trust", "--username=postgres", "--encoding=UTF8"]
    if _run(bindir / "initdb", *args, "--locale=C.UTF-8", check=False).returncode != 0:
        _run(bindir / "initdb", *args, "--locale=C")  # systems without a C.UTF-8 locale


def _port_is_free(port: int) -> bool:
    """Whether PostgreSQL could listen on `port`: it binds with SO_REUSEADDR, so a port whose last
    connections linger in TIME_WAIT (the server's own, from its previous run) counts as free."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _version(bindir: Path) -> tuple[int, ...]:
    return tuple(int(part) for part in bindir.parent.name.split(".") if part.isdigit())
