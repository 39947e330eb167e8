"""Settings of the event relay: broker connection, exchange, batch size, poll interval, retention."""

from __future__ import annotations

import pytest

from encounters_service.settings import SettingsError, load_settings


def test_relay_defaults_are_the_platform_exchange_on_a_local_broker():
    settings = load_settings({})
    assert (settings.rabbitmq_host, settings.rabbitmq_port, settings.rabbitmq_vhost) == ("127.0.0.1", 5672, "/")
    assert (settings.rabbitmq_username, settings.rabbitmq_password) == ("guest", "guest")
    assert settings.rabbitmq_exchange == "dhos"
    assert settings.rabbitmq_disabled is False
    assert (settings.relay_batch_size, settings.relay_poll_interval_s, settings.outbox_retention_hours) == (
        500,
        5.0,
        168.0,
    )


def test_relay_settings_from_the_environment():
    settings = load_settings(
        {
            "RABBITMQ_HOST": "rabbitmq.internal",
            "RABBITMQ_PORT": "5673",
            "RABBITMQ_USERNAME": "svc",
            "RABBITMQ_PASSWORD": "p@ss",
            "RABBITMQ_VHOST": "platform",
            "RABBITMQ_EXCHANGE": "dhos-test",
            "RABBITMQ_DISABLED": "true",
            "RELAY_BATCH_SIZE": "100",
            "RELAY_POLL_INTERVAL_SECONDS": "0.5",
            "OUTBOX_RETENTION_HOURS": "24",
        }
    )
    assert (settings.rabbitmq_host, settings.rabbitmq_port) == ("rabbitmq.internal", 5673)
    assert (settings.rabbitmq_username, settings.rabbitmq_password, settings.rabbitmq_vhost) == (
        "svc",
        "p@ss",
        "platform",
    )
    assert (settings.rabbitmq_exchange, settings.rabbitmq_disabled) == ("dhos-test", True)
    assert (settings.relay_batch_size, settings.relay_poll_interval_s, settings.outbox_retention_hours) == (
        100,
        0.5,
        24.0,
    )


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"RABBITMQ_PORT": "amqp"}, "RABBITMQ_PORT"),
        ({"RABBITMQ_DISABLED": "perhaps"}, "RABBITMQ_DISABLED"),
        ({"RELAY_BATCH_SIZE": "0"}, "RELAY_BATCH_SIZE"),
        ({"RELAY_BATCH_SIZE": "2.5"}, "RELAY_BATCH_SIZE"),
        ({"RELAY_POLL_INTERVAL_SECONDS": "-1"}, "RELAY_POLL_INTERVAL_SECONDS"),
        ({"RELAY_POLL_INTERVAL_SECONDS": "nan"}, "RELAY_POLL_INTERVAL_SECONDS"),
        ({"OUTBOX_RETENTION_HOURS": "a week"}, "OUTBOX_RETENTION_HOURS"),
    ],
)
def test_bad_relay_values_are_refused_with_the_variable_named(env, named):
    with pytest.raises(SettingsError, match=named):
        load_settings(env)
