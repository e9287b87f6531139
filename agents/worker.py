"""Assembles one worker: every agent (enforcer, linker, views, sinks) and the web routes on one App.

Everything that can fail for configuration reasons (schemas, agreements, keys, security settings,
factor catalogue) fails here, at start, with the file and key named: never per event.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import faust

from agents import app as app_module
from agents import audit_sink, health
from agents import enforcer as enforcer_agent
from streams import metrics
from streams.admin import ensure_topics
from streams.agreements import PlanWatcher
from streams.audit import recover_chains
from streams.catalogue import Catalogue, load_catalogue
from streams.enforcement import Enforcer
from streams.keys import KeyRing
from streams.link_facts import VaultBuffer, make_link_facts
from streams.producer import DeliveringProducer
from streams.registry_client import RegistrySchemas, registry_client
from streams.rights import build_rights
from streams.settings import Settings
from streams.topology import DLQ_STAGES, bus_topics
from streams.vault import Vault

log = logging.getLogger(__name__)


@dataclass
class Worker:
    """The pieces of one worker process, kept together so tests and the benchmark can reach them."""

    app: faust.App
    settings: Settings
    catalogue: Catalogue
    keyring: KeyRing
    plans: PlanWatcher
    enforcer: Enforcer
    producer: DeliveringProducer


def broker_reachable(settings: Settings, timeout: float = 2.0) -> bool:
    """True when a broker answers a metadata request (for /ready: Faust keeps running without one)."""
    from confluent_kafka.admin import AdminClient

    admin = AdminClient(settings.kafka_config(**{"log_level": 0, "socket.connection.setup.timeout.ms": 1000}))
    return bool(admin.list_topics(timeout=timeout).brokers)


def load_keyring(settings: Settings) -> KeyRing:
    """Keys from the environment when given there (production: injected from a KMS), else the file."""
    import os

    if os.environ.get("SHARINGBUS_KEYS"):
        return KeyRing.from_env()
    return KeyRing.load(settings.keyring_path)


def build_worker(settings: Settings, *, extra_agents: bool = True) -> Worker:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    catalogue = load_catalogue(settings.schemas_dir)
    keyring = load_keyring(settings)
    plans = PlanWatcher(settings.agreements_dir, catalogue, keyring)
    planset = plans.current()
    ensure_topics(settings, bus_topics(settings, catalogue, planset))
    schemas = RegistrySchemas(registry_client(settings))
    kafka_config = settings.kafka_config()
    audit_partitions = settings.topic_partitions
    vault = VaultBuffer(Vault(settings.postgres_dsn))
    enforcer = Enforcer(
        catalogue=catalogue,
        plans=plans,
        schemas=schemas,
        output_schemas=schemas,
        audit_partitions=audit_partitions,
        recover_chains=lambda ids: recover_chains(kafka_config, ids, audit_partitions),
        link_facts=make_link_facts(settings, catalogue, keyring, vault),
        rights=build_rights(settings, catalogue, keyring),
    )
    producer = DeliveringProducer(kafka_config)
    app = app_module.create_app(settings)
    raw_topics = [topic for _, _, topic in catalogue.raw_topics()]
    run_batch = enforcer_agent.BatchRunner(enforcer, producer, vault)
    extra_checks = {}
    if settings.batched_consumers:
        batched = enforcer_agent.register_batched(app, settings, raw_topics, run_batch)
        extra_checks["enforcer_consuming"] = lambda: batched.alive
    else:
        enforcer_agent.register_agent(app, raw_topics, run_batch)
    # The audit sink always runs: the ledger in PostgreSQL is part of the enforcer's promise. On
    # the batched path it reads with its own consumer, unless it is the only Faust subscription
    # left (Faust's conductor needs one).
    if settings.batched_consumers and extra_agents:
        audit_sink.register_batched(app, settings)
    else:
        audit_sink.register(app, settings)
    if extra_agents:
        _register_downstream(app, settings)
    readiness = health.Readiness(
        app, schemas.reachable, extra=extra_checks, broker_reachable=lambda: broker_reachable(settings)
    )
    health.register(app, readiness)
    metrics.preinitialise(stages=DLQ_STAGES, partners=catalogue.partners)
    metrics.set_worker_info(settings.consumer_group)
    return Worker(app, settings, catalogue, keyring, plans, enforcer, producer)


def _register_downstream(app: faust.App, settings: Settings) -> None:
    from agents import linker, views

    linker.register(app, settings)
    views.register(app, settings)


def run(settings: Settings) -> None:
    """Run one worker until SIGTERM/SIGINT (Faust handles the signals and stops cleanly)."""
    from faust.worker import Worker as FaustWorker

    worker = build_worker(settings)
    FaustWorker(
        worker.app,
        loglevel=settings.log_level,
        logging_config=dict(worker.app.conf.logging_config),
        redirect_stdouts=False,
    ).execute_from_commandline()
