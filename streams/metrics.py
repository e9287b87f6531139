"""Every Prometheus metric of the bus, defined once (names `sharingbus_*`), plus exposition helpers.

Labels are low-cardinality on purpose: partner, recipient, agreement and event type come from
configuration; stage, reason, outcome, status and result are fixed codes. Never put a token, an id,
a topic offset or a free-text reason in a label: each distinct value is a new time series, and a
label value is as visible as a log line. Use `dead_letter_reason()` / `registry_status()` to map
free values onto the fixed codes.

Several worker processes per host: set `PROMETHEUS_MULTIPROC_DIR` to an empty, per-host directory
*before* the process imports prometheus-client (prometheus-client picks its value store at import).
`render_latest()` then aggregates every process's files with `MultiProcessCollector`; call
`mark_process_dead()` when a worker exits. Without the variable the default registry is served.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from importlib.metadata import PackageNotFoundError, version
from typing import Final

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    multiprocess,
)
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics import MetricWrapperBase

from streams.deadletter import INTERNAL, REASONS

# `_created` series double the series count and nothing in deploy/ reads them.
disable_created_metrics()

MULTIPROC_ENV: Final = "PROMETHEUS_MULTIPROC_DIR"

# --- fixed label values ---------------------------------------------------------------------------
OUTCOMES: Final = frozenset({"shared", "denied", "error"})
REGISTRY_STATUSES: Final = frozenset({"ok", "not_found", "client_error", "server_error", "unreachable"})
RELOAD_RESULTS: Final = frozenset({"success", "failure"})

# End-to-end latency is seconds to hours (partners publish extracts in batches), processing is ms.
LATENCY_BUCKETS: Final = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 4 * 3600, 24 * 3600)
PROCESSING_BUCKETS: Final = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5)

# --- events in and out ----------------------------------------------------------------------------
EVENTS_CONSUMED = Counter(
    "sharingbus_events_consumed",
    "Raw events the enforcer consumed, by source partner and event type.",
    ["partner", "event_type"],
)
EVENTS_PRODUCED = Counter(
    "sharingbus_events_produced",
    "Events written to shared topics, by recipient and event type.",
    ["recipient", "event_type"],
)
DECISIONS = Counter(
    "sharingbus_decisions",
    "Plan decisions per (agreement, recipient); outcome is shared, denied or error.",
    ["agreement", "recipient", "outcome"],
)
DEAD_LETTERS = Counter(
    "sharingbus_dead_letters",
    "Events sent to a dead-letter topic, by stage and a fixed reason code.",
    ["stage", "reason"],
)
LAST_EVENT_TIMESTAMP = Gauge(
    "sharingbus_last_event_timestamp_seconds",
    "Unix time the bus last consumed an event from the partner (for 'partner silent' alerts).",
    ["partner"],
    multiprocess_mode="max",
)

# --- latency ---------------------------------------------------------------------------------------
END_TO_END_LATENCY = Histogram(
    "sharingbus_end_to_end_latency_seconds",
    "Seconds from envelope.recorded_at to the shared output being delivered.",
    ["event_type"],
    buckets=LATENCY_BUCKETS,
)
PROCESSING_TIME = Histogram(
    "sharingbus_processing_seconds",
    "Seconds one stage spent on one event (stage: enforcer, link or view).",
    ["stage"],
    buckets=PROCESSING_BUCKETS,
)

# --- consumers and state ---------------------------------------------------------------------------
CONSUMER_LAG = Gauge(
    "sharingbus_consumer_lag",
    "Messages behind the fetch high watermark, per assigned partition (never from ListOffsets).",
    ["topic", "partition"],
    multiprocess_mode="livemostrecent",
)
TABLE_ENTRIES = Gauge(
    "sharingbus_table_entries",
    "Entries held in a Faust table by this worker's partitions.",
    ["table"],
    multiprocess_mode="livesum",
)

# --- schema registry -----------------------------------------------------------------------------
REGISTRY_REQUESTS = Counter(
    "sharingbus_registry_requests",
    "Schema registry requests by operation and status (ok, not_found, client_error, server_error, "
    "unreachable).",
    ["operation", "status"],
)

# --- identifiers and pseudonyms --------------------------------------------------------------------
INVALID_IDENTIFIERS = Counter(
    "sharingbus_invalid_identifiers",
    "Identifiers that failed validation (kind: nhs_number, upn, pnc_id, ...), by source partner.",
    ["kind", "partner"],
)
PSEUDONYMISATIONS = Counter(
    "sharingbus_pseudonymisations",
    "Keyed pseudonyms the enforcer computed (a recurring identifier is computed once per plan), by kind.",
    ["kind"],
)

REIDENTIFICATIONS = Counter(
    "sharingbus_reidentifications",
    "Re-identification answers and refusals, by outcome (granted, not_found, refused, break_glass): "
    "break_glass is an emergency answer without a second approval and pages the DPO.",
    ["outcome"],
)

# --- agreements and worker lifecycle ---------------------------------------------------------------
AGREEMENTS_LOADED = Gauge(
    "sharingbus_agreements_loaded",
    "Agreements in the plan set this worker enforces.",
    multiprocess_mode="livemostrecent",
)
PLAN_RELOADS = Counter(
    "sharingbus_plan_reloads",
    "Agreement reloads (recompiled plan sets), by result: success or failure.",
    ["result"],
)
AGREEMENTS_LAPSED = Gauge(
    "sharingbus_agreements_lapsed",
    "Agreements past their review date or expiry: their flows are stopped (denied, audited) until reviewed.",
    multiprocess_mode="livemax",
)
AGREEMENTS_INVALID = Gauge(
    "sharingbus_agreements_invalid",
    "Agreement files with errors: each is enforced as last loaded (or not at all) until fixed.",
    multiprocess_mode="livemax",
)
READY = Gauge(
    "sharingbus_ready",
    "1 when the worker is ready (recovery done, not rebalancing), else 0.",
    multiprocess_mode="livemin",
)
WORKER_INFO = Gauge(
    "sharingbus_worker_info",
    "Always 1; labels carry the package version and consumer group (Info is not multiprocess-safe).",
    ["version", "consumer_group"],
    multiprocess_mode="livemax",
)

ALL_METRICS: Final[tuple[MetricWrapperBase, ...]] = (
    EVENTS_CONSUMED,
    EVENTS_PRODUCED,
    DECISIONS,
    DEAD_LETTERS,
    LAST_EVENT_TIMESTAMP,
    END_TO_END_LATENCY,
    PROCESSING_TIME,
    CONSUMER_LAG,
    TABLE_ENTRIES,
    REGISTRY_REQUESTS,
    INVALID_IDENTIFIERS,
    PSEUDONYMISATIONS,
    AGREEMENTS_LOADED,
    PLAN_RELOADS,
    AGREEMENTS_LAPSED,
    AGREEMENTS_INVALID,
    READY,
    WORKER_INFO,
)

_SUFFIXES: Final = {
    "counter": ("_total",),
    "gauge": ("",),
    "histogram": ("_bucket", "_count", "_sum"),
}


def sample_names() -> dict[str, str]:
    """Every series name the bus exposes -> its family name (what PromQL may refer to)."""
    names: dict[str, str] = {}
    for metric in ALL_METRICS:
        family, kind = metric._name, metric._type
        for suffix in _SUFFIXES[str(kind)]:
            names[family + suffix] = family
    return names


# --- helpers that keep label values inside their fixed sets ----------------------------------------
def dead_letter_reason(reason: str) -> str:
    """The reason code itself if it is one of `deadletter.REASONS`, else "internal_error"."""
    return reason if reason in REASONS else INTERNAL


def count_dead_letter(stage: str, reason: str) -> None:
    """Count one dead letter; unknown reasons are folded into "internal_error"."""
    DEAD_LETTERS.labels(stage=stage, reason=dead_letter_reason(reason)).inc()


def registry_status(http_status: int | None) -> str:
    """Map an HTTP status (None: no response) onto a REGISTRY_STATUSES code."""
    if http_status is None:
        return "unreachable"
    if 200 <= http_status < 300:
        return "ok"
    if http_status == 404:
        return "not_found"
    return "client_error" if 400 <= http_status < 500 else "server_error"


def preinitialise(stages: Iterable[str] = ()) -> None:
    """Create zero-valued series so `increase()`-based alerts see the first dead letter too."""
    for stage in stages:
        for reason in REASONS:
            DEAD_LETTERS.labels(stage=stage, reason=reason)
    for result in RELOAD_RESULTS:
        PLAN_RELOADS.labels(result=result)


def set_consumer_lag(topic: str, partition: int, highwater: int | None, position: int | None) -> None:
    """Lag = fetch high watermark - next offset to read; unknown until the first fetch."""
    if highwater is None or position is None:
        return
    CONSUMER_LAG.labels(topic=topic, partition=str(partition)).set(max(0, highwater - position))


def remove_consumer_lag(topic: str, partition: int) -> None:
    """Drop a revoked partition's series so a rebalance leaves no stale lag behind."""
    try:
        CONSUMER_LAG.remove(topic, str(partition))
    except KeyError:
        pass


def set_worker_info(consumer_group: str) -> None:
    """Publish `sharingbus_worker_info{version, consumer_group} 1`."""
    try:
        pkg_version = version("sharing-bus")
    except PackageNotFoundError:  # running from a source tree without installation
        pkg_version = "unknown"
    WORKER_INFO.labels(version=pkg_version, consumer_group=consumer_group).set(1)


# --- exposition ------------------------------------------------------------------------------------
def multiprocess_enabled() -> bool:
    return bool(os.environ.get(MULTIPROC_ENV))


def collector_registry() -> CollectorRegistry:
    """The registry to expose: every process's files in multiprocess mode, else the default one."""
    if not multiprocess_enabled():
        return REGISTRY
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return registry


def render_latest(accept: str | None = None) -> tuple[bytes, str]:
    """(body, content_type) for a `/metrics` handler; honours an OpenMetrics Accept header."""
    encoder, content_type = choose_encoder(accept or "")
    return encoder(collector_registry()), content_type


def mark_process_dead(pid: int | None = None) -> None:
    """In multiprocess mode, forget live-only gauges of an exited worker (no-op otherwise)."""
    if multiprocess_enabled():
        multiprocess.mark_process_dead(pid if pid is not None else os.getpid())  # type: ignore[no-untyped-call]
