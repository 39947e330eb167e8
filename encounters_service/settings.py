"""Environment → one frozen Settings object, read once at start-up."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

REPO_ROOT = Path(__file__).resolve().parent.parent
SQL_DIR = REPO_ROOT / "sql"
MIGRATIONS_DIR = REPO_ROOT / "migrations"

READ_ROUTES = ("census", "all", "none")
LOG_LEVELS = ("ERROR", "WARN", "INFO", "DEBUG")
LOG_FORMATS = ("colour", "plain", "json")
HMAC_ALGORITHMS = ("HS256", "HS384", "HS512")
HMAC_KEY_BYTES = {"HS256": 32, "HS384": 48, "HS512": 64}  # the hash's length: the shortest safe key
DATABASE_PARTS = ("DATABASE_HOST", "DATABASE_PORT", "DATABASE_USER", "DATABASE_PASSWORD", "DATABASE_NAME")


# The roles of least privilege (migration 0009; docs/dba.md): who owns the schema and runs the
# migrations, who `serve` and `relay` connect as, and who analysts connect as.
ROLE_PURPOSES = ("owner", "app", "analyst")
_ROLE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


@dataclass(frozen=True)
class DatabaseRoles:
    owner: str = "encounters_owner"
    app: str = "encounters_app"
    analyst: str = "encounters_analyst"

    def migration_options(self) -> str:
        """libpq `options` that hand the names to migration 0009 (settings encounters.<purpose>_role)."""
        return " ".join(f"-c encounters.{purpose}_role={getattr(self, purpose)}" for purpose in ROLE_PURPOSES)


DEFAULT_ROLES = DatabaseRoles()
PRODUCTION = "production"  # the ENVIRONMENT value that marks a production deployment


class SettingsError(ValueError):
    """A configuration value is missing or malformed; the message names it."""


@dataclass(frozen=True)
class Settings:
    database_url: str | None = None  # None: start the embedded local PostgreSQL
    migration_database_url: str | None = None  # `migrate` connects as the owner here; None: database_url
    database_roles: DatabaseRoles = DEFAULT_ROLES  # the names migration 0009 creates
    database_read_url: str | None = None  # hot standbys for reads (standbys.py); None: all on the primary
    read_routes: str = "census"  # which reads may run on a standby: api/read_routing.py
    read_max_lag_ms: int = 1000  # a standby further behind the primary than this is not read from
    host: str = "127.0.0.1"
    port: int = 5000
    data_dir: Path = Path(".encounters-data")
    migrate_on_start: bool | None = None  # None: yes for the embedded database, no otherwise
    local_database: bool = True  # False (the container image): never start the embedded database
    log_level: str = "INFO"
    log_format: str = "plain"
    hs_key: str = "secret"
    hs_issuer: str = "http://localhost/"
    hs_audience: str | None = None  # None: same as the issuer
    hs_algorithms: tuple[str, ...] = HMAC_ALGORITHMS
    jwks_url: str | None = None
    jwks_issuer: str | None = None
    jwks_audience: str | None = None
    jwks_metadata_claim: str = "metadata"
    statement_timeout_ms: int = 5000
    pool_open_timeout_s: float = 10.0
    pool_timeout_s: float = 2.0
    pool_min_size: int = 2
    pool_max_size: int = 10
    version: str = "unknown"
    build_number: str = "unknown"
    git_hash: str = "unknown"
    rabbitmq_host: str = "127.0.0.1"
    rabbitmq_port: int = 5672
    rabbitmq_username: str = "guest"
    rabbitmq_password: str = "guest"
    rabbitmq_vhost: str = "/"
    rabbitmq_exchange: str = "dhos"  # the platform's durable topic exchange
    rabbitmq_disabled: bool = False  # True: the relay publishes nothing; messages wait in the outbox
    relay_batch_size: int = 500
    relay_poll_interval_s: float = 5.0  # safety net; the relay normally wakes on NOTIFY
    outbox_retention_hours: float = 168.0  # published messages are deleted after this
    allow_drop_data: bool = False  # True: serve the development routes POST /encounter/bulk, /drop_data
    environment: str = ""  # the deployment's name; "production" refuses allow_drop_data
    metrics_enabled: bool = True  # GET /metrics and the per-request counting
    relay_metrics_port: int | None = None  # `encounters-service relay` serves its metrics on it
    # The HTTP server of `serve` (see docs/reliability.md for why these values):
    http_idle_timeout_s: float = 5.0  # complete request headers within this, from connect or the last answer
    http_body_timeout_s: float = 10.0  # the whole request body within this, from its first read (else 408)
    http_max_connections: int = 10_000  # open connections per `serve`, shared out among its workers
    # The system of the EPR id in FHIR Encounter.identifier (api/fhir.py): a URI naming the hospital's EPR.
    fhir_epr_identifier_system: str = "urn:encounters-service:epr-encounter-id"

    @property
    def audience(self) -> str:
        return self.hs_audience or self.hs_issuer

    @property
    def weak_key_warning(self) -> str | None:
        """What is wrong with HS_KEY for the HMAC algorithms allowed, if anything (RFC 7518 3.2:
        a key at least as long as the hash), for `serve` to say once at start."""
        wanted = max(HMAC_KEY_BYTES[name] for name in self.hs_algorithms)
        if self.hs_key == Settings.hs_key:
            return (
                "HS_KEY is not set: tokens are signed and checked with the built-in local key, which is fit "
                f"for local use only; set HS_KEY to a random value of at least {wanted} bytes in every deployment"
            )
        if len(self.hs_key.encode()) < wanted:
            return (
                f"HS_KEY is {len(self.hs_key.encode())} bytes; {', '.join(self.hs_algorithms)} want at least {wanted}"
            )
        return None

    @property
    def embedded(self) -> bool:
        return self.database_url is None and self.migration_database_url is None

    @property
    def should_migrate_on_start(self) -> bool:
        return self.embedded if self.migrate_on_start is None else self.migrate_on_start

    def with_overrides(self, **changes: Any) -> Settings:
        return replace(self, **{k: v for k, v in changes.items() if v is not None})


def _flag(env: Mapping[str, str], name: str) -> bool | None:
    raw = env.get(name)
    if raw is None or raw == "":
        return None
    lowered = raw.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"{name} must be true or false, got {raw!r}")


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a whole number, got {raw!r}") from None


_Number = TypeVar("_Number", int, float)


def _positive(env: Mapping[str, str], name: str, default: _Number, kind: Callable[[str], _Number]) -> _Number:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = kind(raw)
    except ValueError:
        value = None
    if value is None or not 0 < value < float("inf"):
        raise SettingsError(f"{name} must be a positive {'whole ' if kind is int else ''}number, got {raw!r}")
    return value


def _choice(env: Mapping[str, str], name: str, default: str, choices: tuple[str, ...]) -> str:
    raw = env.get(name) or default
    value = {"WARNING": "WARN", "COLOR": "colour"}.get(raw.upper(), raw)
    for choice in choices:
        if value.lower() == choice.lower():
            return choice
    raise SettingsError(f"{name} must be one of {', '.join(choices)}, got {raw!r}")


def database_url_from(env: Mapping[str, str]) -> str | None:
    """DATABASE_URL, or a URL assembled from DATABASE_HOST/PORT/USER/PASSWORD/NAME, or None."""
    if env.get("DATABASE_URL"):
        return env["DATABASE_URL"]
    if not any(env.get(part) for part in DATABASE_PARTS):
        return None
    user = quote(env.get("DATABASE_USER") or "postgres", safe="")
    password = env.get("DATABASE_PASSWORD")
    credentials = f"{user}:{quote(password, safe='')}" if password else user
    host = env.get("DATABASE_HOST") or "localhost"
    port = _int(env, "DATABASE_PORT", 5432)
    name = quote(env.get("DATABASE_NAME") or "postgres", safe="")
    return f"postgresql://{credentials}@{host}:{port}/{name}"


def _read_url(env: Mapping[str, str]) -> str | None:
    """DATABASE_READ_URL, checked: a libpq URL or key=value string, which needs DATABASE_URL beside it."""
    url = env.get("DATABASE_READ_URL") or None
    if url is None:
        return None
    if database_url_from(env) is None:
        raise SettingsError("DATABASE_READ_URL names standbys of a primary: set DATABASE_URL to the primary too")
    try:
        standby_conninfos(url)
    except (psycopg.ProgrammingError, ValueError) as error:
        raise SettingsError(f"DATABASE_READ_URL is not a libpq connection string: {error}") from None
    return url


def _migration_url(env: Mapping[str, str]) -> str | None:
    """MIGRATION_DATABASE_URL (the owner's), checked; None when unset (migrations use DATABASE_URL)."""
    url = env.get("MIGRATION_DATABASE_URL") or None
    if url is None:
        return None
    try:
        conninfo_to_dict(url)
    except psycopg.ProgrammingError as error:
        raise SettingsError(f"MIGRATION_DATABASE_URL is not a libpq connection string: {error}") from None
    return url


def _roles(env: Mapping[str, str]) -> DatabaseRoles:
    """DATABASE_OWNER_ROLE, DATABASE_APP_ROLE, DATABASE_ANALYST_ROLE: three different plain names."""
    names = {}
    for purpose in ROLE_PURPOSES:
        variable = f"DATABASE_{purpose.upper()}_ROLE"
        name = env.get(variable) or getattr(DatabaseRoles, purpose)
        if not _ROLE_NAME.match(name):
            raise SettingsError(
                f"{variable} must be a role name of lower-case letters, digits and _ (at most 63), got {name!r}"
            )
        names[purpose] = name
    if len(set(names.values())) < len(names):
        raise SettingsError(f"the owner, app and analyst roles must be three different roles, got {names}")
    return DatabaseRoles(**names)


def standby_conninfos(read_url: str) -> list[tuple[str, str]]:
    """(name, conninfo) per host of a libpq URL or key=value string that may list several
    (`host=a,b port=5432,5433`, or `postgresql://a:5432,b:5433/db`): every other parameter
    applies to each. load_balance_hosts is left out: the service chooses among them (standbys.py)."""
    params = conninfo_to_dict(read_url)
    params.pop("load_balance_hosts", None)
    hosts = str(params.pop("host", "") or "localhost").split(",")
    ports = str(params.pop("port", "") or "5432").split(",")
    if len(ports) == 1:
        ports *= len(hosts)
    if len(ports) != len(hosts):
        raise ValueError(f"{len(hosts)} hosts but {len(ports)} ports")
    pairs = zip(hosts, ports, strict=True)
    return [(f"{host}:{port}", make_conninfo("", **params, host=host, port=port)) for host, port in pairs]


def _issuer(env: Mapping[str, str]) -> str:
    if env.get("HS_ISSUER"):
        return env["HS_ISSUER"]
    if env.get("PROXY_URL"):
        return env["PROXY_URL"].rstrip("/") + "/"
    return Settings.hs_issuer


def _algorithms(env: Mapping[str, str]) -> tuple[str, ...]:
    raw = env.get("HS_ALGORITHMS")
    if not raw:
        return HMAC_ALGORITHMS
    chosen = tuple(part.strip().upper() for part in raw.split(",") if part.strip())
    unknown = [alg for alg in chosen if alg not in HMAC_ALGORITHMS]
    if unknown or not chosen:
        raise SettingsError(f"HS_ALGORITHMS must list some of {', '.join(HMAC_ALGORITHMS)}, got {raw!r}")
    return chosen


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    env = os.environ if env is None else env
    return Settings(
        database_url=database_url_from(env),
        database_read_url=_read_url(env),
        migration_database_url=_migration_url(env),
        database_roles=_roles(env),
        read_routes=_choice(env, "READ_ROUTES", Settings.read_routes, READ_ROUTES),
        read_max_lag_ms=_positive(env, "READ_MAX_LAG_MS", Settings.read_max_lag_ms, int),
        host=env.get("HOST") or Settings.host,
        port=_int(env, "PORT", Settings.port),
        data_dir=Path(env.get("ENCOUNTERS_DATA_DIR") or Settings.data_dir),
        migrate_on_start=_flag(env, "MIGRATE_ON_START"),
        local_database=_flag(env, "LOCAL_DATABASE") is not False,
        log_level=_choice(env, "LOG_LEVEL", Settings.log_level, LOG_LEVELS),
        log_format=_choice(env, "LOG_FORMAT", Settings.log_format, LOG_FORMATS),
        hs_key=env.get("HS_KEY") or Settings.hs_key,
        hs_issuer=_issuer(env),
        hs_audience=env.get("HS_AUDIENCE") or None,
        hs_algorithms=_algorithms(env),
        jwks_url=env.get("JWKS_URL") or None,
        jwks_issuer=env.get("JWKS_ISSUER") or None,
        jwks_audience=env.get("JWKS_AUDIENCE") or None,
        jwks_metadata_claim=env.get("JWKS_METADATA_CLAIM") or Settings.jwks_metadata_claim,
        statement_timeout_ms=_int(env, "STATEMENT_TIMEOUT_MS", Settings.statement_timeout_ms),
        pool_min_size=_int(env, "POOL_MIN_SIZE", Settings.pool_min_size),
        pool_max_size=_int(env, "POOL_MAX_SIZE", Settings.pool_max_size),
        version=env.get("VERSION") or _package_version(),
        build_number=env.get("BUILD_NUMBER") or env.get("CIRCLE_BUILD_NUM") or "unknown",
        git_hash=env.get("GIT_HASH") or env.get("BUILD_GIT_HASH") or _git_hash(),
        rabbitmq_host=env.get("RABBITMQ_HOST") or Settings.rabbitmq_host,
        rabbitmq_port=_int(env, "RABBITMQ_PORT", Settings.rabbitmq_port),
        rabbitmq_username=env.get("RABBITMQ_USERNAME") or Settings.rabbitmq_username,
        rabbitmq_password=env.get("RABBITMQ_PASSWORD") or Settings.rabbitmq_password,
        rabbitmq_vhost=env.get("RABBITMQ_VHOST") or Settings.rabbitmq_vhost,
        rabbitmq_exchange=env.get("RABBITMQ_EXCHANGE") or Settings.rabbitmq_exchange,
        rabbitmq_disabled=bool(_flag(env, "RABBITMQ_DISABLED")),
        relay_batch_size=_positive(env, "RELAY_BATCH_SIZE", Settings.relay_batch_size, int),
        relay_poll_interval_s=_positive(env, "RELAY_POLL_INTERVAL_SECONDS", Settings.relay_poll_interval_s, float),
        outbox_retention_hours=_positive(env, "OUTBOX_RETENTION_HOURS", Settings.outbox_retention_hours, float),
        allow_drop_data=_allow_drop_data(env),
        environment=env.get("ENVIRONMENT", ""),
        metrics_enabled=_flag(env, "METRICS_ENABLED") is not False,
        relay_metrics_port=_positive(env, "RELAY_METRICS_PORT", 0, int) or None,
        http_idle_timeout_s=_positive(env, "HTTP_IDLE_TIMEOUT_SECONDS", Settings.http_idle_timeout_s, float),
        http_body_timeout_s=_positive(env, "HTTP_BODY_TIMEOUT_SECONDS", Settings.http_body_timeout_s, float),
        http_max_connections=_positive(env, "HTTP_MAX_CONNECTIONS", Settings.http_max_connections, int),
        fhir_epr_identifier_system=_uri(env, "FHIR_EPR_IDENTIFIER_SYSTEM", Settings.fhir_epr_identifier_system),
    )


def _uri(env: Mapping[str, str], name: str, default: str) -> str:
    """An absolute URI (a scheme, then no spaces), as FHIR's uri type wants it."""
    value = env.get(name) or default
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9+.-]*:\S+", value):
        raise SettingsError(f"{name} must be an absolute URI such as urn:oid:1.2.3 or https://…, got {value!r}")
    return value


def _allow_drop_data(env: Mapping[str, str]) -> bool:
    """ALLOW_DROP_DATA=true, which a production deployment may never set."""
    allowed = bool(_flag(env, "ALLOW_DROP_DATA"))
    if allowed and env.get("ENVIRONMENT", "").strip().lower() == PRODUCTION:
        raise SettingsError("ALLOW_DROP_DATA=true is refused with ENVIRONMENT=production: it serves POST /drop_data")
    return allowed


def _package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("encounters-service")
    except PackageNotFoundError:
        return "unknown"


def _git_hash() -> str:
    """The checkout's commit, read from .git without running git; "unknown" outside a checkout."""
    git_dir = REPO_ROOT / ".git"
    try:
        head = (git_dir / "HEAD").read_text().strip()
        if head.startswith("ref: "):
            ref = head[5:]
            ref_file = git_dir / ref
            if ref_file.exists():
                return ref_file.read_text().strip()
            for line in (git_dir / "packed-refs").read_text().splitlines():
                if line.endswith(" " + ref):
                    return line.split(" ", 1)[0]
            return "unknown"
        return head
    except OSError:
        return "unknown"
