"""Settings: environment → one frozen Settings object."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from encounters_service.settings import SettingsError, load_settings


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
