"""Assembles one worker: the agents of its roles (enforcer, audit sink, linker, views) and web routes.

Everything that can fail for configuration reasons (schemas, agreements, keys, security settings,
factor catalogue) fails here, at start, with the file and key named: never per event.

Only the roles that tokenise (`KEYED_ROLES`) load the master keys: the audit sink, the linker (it
sees tokens, never identifiers) and the views and API (the role exposed to analysts' requests) run
with no key material in the process, so a compromise of any of them yields no pseudonym key.
"""

from __future__ import annotations

import gc
import logging
from dataclasses import dataclass
from typing import Any, cast

import faust

from agents import app as app_module
from agents import audit_sink, health, topic_guard
from agents import enforcer as enforcer_agent
from agents.batched import BatchedConsumer
from agents.web.auth import Guard
from agents.web.auth import install as protect_web
from agents.web.grants import PersonViewReaders
from streams import metrics
from streams.agreements import PlanWatcher, check_agreements
from streams.agreements.loader import refuse_start
from streams.avro.catalogue import Catalogue, load_catalogue
from streams.avro.serde import SchemaCache
from streams.enforce.audit_recovery import recover_chains
from streams.enforce.engine import Enforcer
from streams.enforce.epoch import EPOCH_DEADLINE_S, continue_chains, stored_heads
from streams.enforce.link_facts import make_link_facts
from streams.kafka.acls import may_create
from streams.kafka.admin import ensure_topics
from streams.kafka.producer import CHAINED_PRODUCER, DeliveringProducer
from streams.kafka.topology import DLQ_STAGES, bus_topics
from streams.privacy.key_sources import load_keyring
from streams.privacy.keys import KeyRing
from streams.privacy.vault import Vault
from streams.registry.client import registry_client
from streams.rights import build_rights, linkage_key_id
from streams.rights.stage import RequestStage
from streams.settings import Settings

log = logging.getLogger(__name__)

# Roles that compute tokens and so need the master keys (the subject-rights service runs in the enforcer).
KEYED_ROLES = frozenset({"enforcer", "rights"})

# A stream worker's per-event objects are short-lived and almost never cyclic, yet CPython's
# default threshold (700) runs a young collection every few events and a full one, which scans
# every object the worker holds (caches, Faust, the libraries), every ~70k allocations: a cost
# paid per event for garbage that is almost never there. Cycles are still collected, just in bigger
# steps; the objects built at start (modules, plans, the app) are frozen out of every scan.
GC_THRESHOLD = (50_000, 20, 20)


@dataclass
class Worker:
    """The pieces of one worker process, kept together so tests and the benchmark can reach them.

    `keyring` and `plans` are None when no role of the worker tokenises (see KEYED_ROLES);
    `enforcer` and `producer` are None when the worker does not run the enforcer role.
    """

    app: faust.App
    settings: Settings
    catalogue: Catalogue
    keyring: KeyRing | None
    plans: PlanWatcher | None
    enforcer: Enforcer | None
    producer: DeliveringProducer | None


def broker_reachable(settings: Settings, timeout: float = 2.0) -> bool:
    """True when a broker answers a metadata request (for /ready: Faust keeps running without one)."""
    from confluent_kafka.admin import AdminClient

    admin = AdminClient(settings.kafka_config(**{"log_level": 0, "socket.connection.setup.timeout.ms": 1000}))
    return bool(admin.list_topics(timeout=timeout).brokers)


def build_worker(settings: Settings) -> Worker:
    """One worker running `settings.roles` (default all: enforcer, audit, linker, views).

    Roles scale independently in production (docker-compose runs enforcer-only workers beside
    one set for the rest); each role reads with its own consumer group, so any mix of workers
    shares every role's partitions.
    """
    roles = settings.role_set
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    catalogue = load_catalogue(settings.schemas_dir)
    keyring: KeyRing | None = None
    plans: PlanWatcher | None = None
    if roles & KEYED_ROLES:
        keyring = load_keyring(settings)
        plans = PlanWatcher(settings.agreements_dir, catalogue, keyring)
        plans.start()  # on a timer: revocations and lapses apply with or without traffic
        specs = bus_topics(settings, catalogue, plans.current())
    else:
        # As for the enforcer, only unusable recipients stop a worker at start (docs/agreements.md);
        # shared topics are the enforcer's to create.
        refuse_start(check_agreements(settings.agreements_dir, catalogue)[1])
        specs = bus_topics(settings, catalogue)
    # Each role's Kafka principal may create only its inputs and outputs (streams.kafka.acls).
    creatable = may_create(roles, settings.consumer_group)
    own_topics = [s for s in specs if creatable(s.name)]
    ensure_topics(settings, own_topics)
    schemas = SchemaCache(registry_client(settings))
    # Faust consumes only for the views (tables); every other role reads with a batched consumer.
    faust_consumer = "views" in roles
    app = app_module.create_app(settings, consume=faust_consumer)
    topic_guard.register(app, settings, own_topics)  # a broker that kept nothing loses them all
    batched: list[BatchedConsumer] = []
    enforcer = producer = None
    if "enforcer" in roles and keyring is not None and plans is not None:
        enforcer, producer = _register_enforcer(app, settings, catalogue, keyring, plans, schemas, batched)
    if "audit" in roles:
        batched.append(audit_sink.register(app, settings))
    if "linker" in roles:
        from agents import linker

        batched.append(linker.register(app, settings, view_tokens=_view_tokens(settings, keyring)))
    if "views" in roles:
        from agents import views

        views.register(app, settings)
    readiness = health.Readiness(
        app,
        schemas.reachable,
        extra={
            **{f"{b.name}_joined": (lambda b=b: b.joined) for b in batched},  # type: ignore[misc]
            **{f"{b.name}_consuming": (lambda b=b: b.consuming) for b in batched},  # type: ignore[misc]
        },
        broker_reachable=lambda: broker_reachable(settings),
        batched_assigned=lambda: sum(len(b.assigned) for b in batched),
        faust_consumer=faust_consumer,
    )
    health.register(app, readiness)
    _guard_web(app, settings, catalogue)
    metrics.preinitialise(stages=DLQ_STAGES)
    metrics.set_worker_info(settings.consumer_group)
    log.info("worker roles: %s", settings.roles)
    return Worker(app, settings, catalogue, keyring, plans, enforcer, producer)


def _guard_web(app: faust.App, settings: Settings, catalogue: Catalogue) -> None:
    """Every web request but /health is authenticated (agents.web.auth); person-level answers go only
    to recipients the agreements grant the person view (read without keys: agents.web.grants)."""
    guard = Guard.from_settings(
        settings, person_readers=PersonViewReaders(settings.agreements_dir, catalogue)
    )
    protect_web(cast(Any, app.web).web_app, guard)


def _view_tokens(settings: Settings, keyring: KeyRing | None) -> Any:
    """The linker's per-recipient person tokens, made with the view domains' derived keys alone
    (never the views role's; docs/combination.md). None: this linker feeds no person view."""
    from streams.linkage.view_tokens import ViewTokens, view_keys
    from streams.privacy.domain_keys import DomainKeys

    if settings.view_keys_path is not None:
        keys = DomainKeys.load(settings.view_keys_path)
        return ViewTokens(keys, settings.linkage_key_id or keys.kids[0])
    if keyring is not None:  # a keyed role shares this process: derive, and give the linker only those
        kid = linkage_key_id(settings, keyring)
        return ViewTokens(view_keys(keyring, settings.agreements_dir, kid), kid)
    log.warning("linker without view keys (SHARINGBUS_VIEW_KEYS_PATH): it feeds no person view")
    return None


def _register_enforcer(
    app: faust.App,
    settings: Settings,
    catalogue: Catalogue,
    keyring: KeyRing,
    plans: PlanWatcher,
    schemas: SchemaCache,
    batched: list[BatchedConsumer],
) -> tuple[Enforcer, DeliveringProducer]:
    kafka_config = settings.kafka_config()
    audit_partitions = settings.topic_partitions
    rights = build_rights(settings, catalogue, keyring)
    producer = DeliveringProducer(settings.producer_config(**CHAINED_PRODUCER))  # it writes the audit chains
    heads = stored_heads(settings.pg_dsn("enforcer"))
    enforcer = Enforcer(
        catalogue=catalogue,
        plans=plans,
        schemas=schemas,
        audit_partitions=audit_partitions,
        recover_chains=continue_chains(
            lambda ids: recover_chains(kafka_config, ids, audit_partitions),
            heads,
            lambda epochs: producer.send_all(epochs, deadline_s=EPOCH_DEADLINE_S),
        ),
        link_facts=make_link_facts(settings, catalogue, keyring),
        rights=rights,
    )
    raw_topics = [topic for _, _, topic in catalogue.raw_topics()]
    vault = Vault(settings.pg_dsn("enforcer"))
    run_batch = enforcer_agent.BatchRunner(enforcer, producer, vault, RequestStage(rights))
    batched.append(enforcer_agent.register(app, settings, raw_topics, run_batch))
    return enforcer, producer


def tune_gc() -> None:
    """Freeze what start-up built and collect in bigger steps (see GC_THRESHOLD)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLD)


def run(settings: Settings) -> None:
    """Run one worker until SIGTERM/SIGINT (Faust handles the signals and stops cleanly)."""
    from faust.worker import Worker as FaustWorker

    worker = build_worker(settings)
    health.serve_metrics_port(settings)
    tune_gc()
    try:
        FaustWorker(
            worker.app,
            loglevel=settings.log_level,
            logging_config=dict(worker.app.conf.logging_config),
            redirect_stdouts=False,
        ).execute_from_commandline()
    finally:
        # Several workers share PROMETHEUS_MULTIPROC_DIR: a stopped one's live gauges must go.
        metrics.mark_process_dead()
