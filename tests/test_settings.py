"""Settings: environment → one frozen Settings object."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from psycopg.conninfo import conninfo_to_dict

from encounters_service.settings import DatabaseRoles, SettingsError, load_settings, standby_conninfos


def test_defaults_start_the_embedded_database_on_localhost_5000():
    settings = load_settings({})
    assert settings.database_url is None and settings.embedded
    assert (settings.host, settings.port) == ("127.0.0.1", 5000)
    assert settings.data_dir == Path(".encounters-data")
    assert settings.should_migrate_on_start
    assert settings.audience == settings.hs_issuer
    assert settings.hs_algorithms == ("HS256", "HS384", "HS512")


def test_database_url_wins_and_turns_migrations_on_start_off():
    settings = load_settings({"DATABASE_URL": "postgresql://u@h/db", "DATABASE_HOST": "ignored"})
    assert settings.database_url == "postgresql://u@h/db"
    assert not settings.embedded and not settings.should_migrate_on_start
    assert load_settings({"DATABASE_URL": "postgresql://u@h/db", "MIGRATE_ON_START": "true"}).should_migrate_on_start


def test_database_parts_assemble_a_url_with_escaped_credentials():
    env = {
        "DATABASE_HOST": "db.local",
        "DATABASE_PORT": "6543",
        "DATABASE_USER": "svc",
        "DATABASE_PASSWORD": "p@ss/word",
        "DATABASE_NAME": "encounters",
    }
    assert load_settings(env).database_url == "postgresql://svc:p%40ss%2Fword@db.local:6543/encounters"


def test_issuer_from_proxy_url_and_explicit_audience():
    assert load_settings({"PROXY_URL": "https://proxy.example"}).hs_issuer == "https://proxy.example/"
    settings = load_settings({"HS_ISSUER": "iss", "PROXY_URL": "ignored", "HS_AUDIENCE": "aud"})
    assert (settings.hs_issuer, settings.audience) == ("iss", "aud")


def test_log_settings_accept_the_documented_values_case_insensitively():
    settings = load_settings({"LOG_LEVEL": "debug", "LOG_FORMAT": "JSON"})
    assert (settings.log_level, settings.log_format) == ("DEBUG", "json")
    assert load_settings({"LOG_LEVEL": "WARNING"}).log_level == "WARN"


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"PORT": "http"}, "PORT"),
        ({"LOG_LEVEL": "LOUD"}, "LOG_LEVEL"),
        ({"LOG_FORMAT": "xml"}, "LOG_FORMAT"),
        ({"MIGRATE_ON_START": "maybe"}, "MIGRATE_ON_START"),
        ({"HS_ALGORITHMS": "RS256"}, "HS_ALGORITHMS"),
        ({"DATABASE_HOST": "h", "DATABASE_PORT": "x"}, "DATABASE_PORT"),
    ],
)
def test_bad_values_are_refused_with_the_variable_named(env, named):
    with pytest.raises(SettingsError, match=named):
        load_settings(env)


def test_host_port_data_dir_and_algorithm_allow_list():
    settings = load_settings({"HOST": "0.0.0.0", "PORT": "8080", "ENCOUNTERS_DATA_DIR": "/d", "HS_ALGORITHMS": "hs512"})
    assert (settings.host, settings.port, settings.data_dir) == ("0.0.0.0", 8080, Path("/d"))
    assert settings.hs_algorithms == ("HS512",)


def test_settings_are_frozen_and_overrides_skip_unset_values():
    settings = load_settings({})
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.port = 1
    assert settings.with_overrides(port=None, host="::1").host == "::1"
    assert settings.with_overrides(port=None).port == 5000


def test_version_build_and_hash_from_the_environment():
    settings = load_settings({"BUILD_NUMBER": "77", "GIT_HASH": "abc123"})
    assert (settings.build_number, settings.git_hash) == ("77", "abc123")


def test_log_format_takes_color_as_well_as_colour():
    assert load_settings({"LOG_FORMAT": "color"}).log_format == "colour"
    assert load_settings({"LOG_FORMAT": "COLOUR"}).log_format == "colour"


def test_a_default_or_short_hs_key_is_named_once_at_start():
    assert "HS_KEY is not set" in load_settings({}).weak_key_warning
    assert (
        load_settings({"HS_KEY": "k" * 63}).weak_key_warning
        == "HS_KEY is 63 bytes; HS256, HS384, HS512 want at least 64"
    )
    assert load_settings({"HS_KEY": "k" * 32, "HS_ALGORITHMS": "HS256"}).weak_key_warning is None
    assert load_settings({"HS_KEY": "k" * 64}).weak_key_warning is None


def test_http_server_timeouts_and_connection_limit():
    defaults = load_settings({})
    assert (defaults.http_idle_timeout_s, defaults.http_body_timeout_s, defaults.http_max_connections) == (
        5.0,
        10.0,
        10_000,
    )
    env = {"HTTP_IDLE_TIMEOUT_SECONDS": "2.5", "HTTP_BODY_TIMEOUT_SECONDS": "30", "HTTP_MAX_CONNECTIONS": "500"}
    settings = load_settings(env)
    assert (settings.http_idle_timeout_s, settings.http_body_timeout_s, settings.http_max_connections) == (
        2.5,
        30.0,
        500,
    )


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("HTTP_IDLE_TIMEOUT_SECONDS", "0"),
        ("HTTP_IDLE_TIMEOUT_SECONDS", "soon"),
        ("HTTP_BODY_TIMEOUT_SECONDS", "-1"),
        ("HTTP_BODY_TIMEOUT_SECONDS", "inf"),
        ("HTTP_MAX_CONNECTIONS", "0"),
        ("HTTP_MAX_CONNECTIONS", "1.5"),
    ],
)
def test_http_server_settings_refuse_what_is_not_a_positive_number(name, value):
    with pytest.raises(SettingsError, match=name):
        load_settings({name: value})


PRIMARY = {"DATABASE_URL": "postgresql://u@p/db"}


def test_read_replica_settings_default_to_everything_on_the_primary():
    settings = load_settings(PRIMARY)
    assert settings.database_read_url is None
    assert (settings.read_routes, settings.read_max_lag_ms) == ("census", 1000)
    chosen = load_settings({**PRIMARY, "DATABASE_READ_URL": "host=a,b", "READ_ROUTES": "ALL", "READ_MAX_LAG_MS": "250"})
    assert (chosen.database_read_url, chosen.read_routes, chosen.read_max_lag_ms) == ("host=a,b", "all", 250)


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"DATABASE_READ_URL": "host=a"}, "DATABASE_URL"),  # standbys of no primary
        ({**PRIMARY, "DATABASE_READ_URL": "host=a bogus=1"}, "DATABASE_READ_URL"),
        ({**PRIMARY, "DATABASE_READ_URL": "host=a,b,c port=1,2"}, "DATABASE_READ_URL"),
        ({**PRIMARY, "READ_ROUTES": "some"}, "READ_ROUTES"),
        ({**PRIMARY, "READ_MAX_LAG_MS": "0"}, "READ_MAX_LAG_MS"),
    ],
)
def test_read_replica_settings_refuse_what_would_not_work(env, named):
    with pytest.raises(SettingsError, match=named):
        load_settings(env)


@pytest.mark.parametrize(
    ("url", "hosts"),
    [
        ("host=a,b port=5433 dbname=x target_session_attrs=standby", ["a:5433", "b:5433"]),
        ("postgresql://u@a:1,b:2/x?load_balance_hosts=random", ["a:1", "b:2"]),
        ("postgresql://u@a/x", ["a:5432"]),
    ],
)
def test_each_standby_of_the_read_url_gets_its_own_conninfo(url, hosts):
    found = standby_conninfos(url)
    assert [name for name, _ in found] == hosts
    for name, conninfo in found:
        params = conninfo_to_dict(conninfo)
        assert f"{params['host']}:{params['port']}" == name
        assert params["dbname"] == "x" and "load_balance_hosts" not in params


def test_the_database_roles_default_and_may_be_renamed():
    assert load_settings({}).database_roles == DatabaseRoles("encounters_owner", "encounters_app", "encounters_analyst")
    renamed = load_settings({"DATABASE_APP_ROLE": "svc", "DATABASE_ANALYST_ROLE": "readers"}).database_roles
    assert renamed == DatabaseRoles("encounters_owner", "svc", "readers")
    assert renamed.migration_options() == (
        "-c encounters.owner_role=encounters_owner -c encounters.app_role=svc -c encounters.analyst_role=readers"
    )


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"DATABASE_APP_ROLE": "Svc"}, "DATABASE_APP_ROLE must be a role name of lower-case letters"),
        ({"DATABASE_OWNER_ROLE": "a b"}, "DATABASE_OWNER_ROLE must be a role name"),
        ({"DATABASE_ANALYST_ROLE": "encounters_app"}, "three different roles"),
        ({"MIGRATION_DATABASE_URL": "not a url"}, "MIGRATION_DATABASE_URL is not a libpq connection string"),
    ],
)
def test_bad_database_role_settings_are_refused_by_name(env, message):
    with pytest.raises(SettingsError, match=message):
        load_settings(env)


def test_the_migrations_use_their_own_url_when_given():
    both = load_settings({"DATABASE_URL": "postgresql://app@db/x", "MIGRATION_DATABASE_URL": "postgresql://owner@db/x"})
    assert (both.database_url, both.migration_database_url, both.embedded) == (
        "postgresql://app@db/x",
        "postgresql://owner@db/x",
        False,
    )
    assert load_settings({"MIGRATION_DATABASE_URL": "postgresql://owner@db/x"}).embedded is False
