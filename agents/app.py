"""Builds the Faust App from Settings, and nothing else (agents register themselves in `agents.worker`)."""

from __future__ import annotations

import faust

from agents import rebalance_fix, recovery_fix
from streams.kafka.security import faust_credentials
from streams.logs import logging_config
from streams.settings import Settings


def create_app(settings: Settings, *, consume: bool = True) -> faust.App:
    """The Faust App for these settings.

    `consume=False` starts Faust without its Kafka consumer, conductor and table manager (Faust's
    own `BootStrategy` switch): for workers whose roles all read with batched consumers, since
    Faust's conductor refuses an empty subscription.

    Raw bytes everywhere (agents decode with fastavro themselves, so a bad value is dead-lettered
    instead of silently acked), explicit partition counts (Tansu auto-creates 4), Faust's table-
    over-HTTP views off, and at-least-once (Faust's exactly_once does not work on Tansu).
    """
    recovery_fix.install(settings.kafka_config())
    recovery_fix.lower_fetch_wait(settings.fetch_max_wait_ms)
    rebalance_fix.install()
    app = faust.App(
        settings.consumer_group,
        broker=[f"kafka://{server}" for server in settings.bootstrap_servers.split(",")],
        broker_credentials=faust_credentials(settings),
        value_serializer="raw",
        key_serializer="raw",
        topic_partitions=settings.topic_partitions,
        topic_replication_factor=settings.replication_factor,
        topic_allow_declare=True,
        topic_disable_leader=True,
        processing_guarantee="at_least_once",
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=settings.consumer_session_timeout_ms / 1000,
        broker_heartbeat_interval=settings.consumer_heartbeat_ms / 1000,
        broker_commit_interval=1.0,
        producer_linger_ms=10,
        stream_buffer_maxsize=16384,
        web_enabled=True,
        web_host=settings.web_host,
        web_port=settings.web_port,
        web_bind=settings.web_host,
        web_tables_enabled=False,
        store="memory://",
        logging_config=logging_config(settings),
        worker_redirect_stdouts=False,
        datadir=str(settings.data_dir / "faust"),
    )
    if not consume:
        app.boot_strategy = app.BootStrategy(app, enable_kafka_consumer=False)
    return app
