"""The consumer-group session is a setting, honoured by Faust's consumer and the batched ones."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from agents.app import create_app
from agents.batched import BatchedConsumer
from streams.settings import Settings


def test_heartbeat_must_be_below_the_session_timeout() -> None:
    with pytest.raises(ValidationError, match="consumer_heartbeat_ms must be below"):
        Settings(consumer_session_timeout_ms=4000, consumer_heartbeat_ms=4000)


def test_faust_and_batched_consumers_use_the_configured_session() -> None:
    settings = Settings(consumer_session_timeout_ms=4000, consumer_heartbeat_ms=500)
    app = create_app(settings, consume=False)
    assert (app.conf.broker_session_timeout, app.conf.broker_heartbeat_interval) == (4.0, 0.5)
    consumer = BatchedConsumer(settings, ["raw.x"], lambda records: None, group="g", name="t")
    conf = consumer._consumer_config()
    assert (conf["session.timeout.ms"], conf["heartbeat.interval.ms"]) == (4000, 500)
