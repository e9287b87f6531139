"""The linker agent: `link.identifiers` in, `link.person` facts and merges out (docs/linkage.md).

Facts say why their record linked (`link`: which rule, and for a probabilistic link which
comparisons agreed and the match weight) and which review questions it raised (`review`); the
questions go to the review queue (`streams.linkage.review`), whose answers come back on
`link.identifiers` as `review_decision` records and are applied in stream order.

One ordered stream (1 partition, concurrency 1). Each batch runs in a worker thread, in this order:
1. link every record (`streams.linkage.linker.Linker`), dead-lettering malformed ones with a reason;
2. produce facts, merges and dead letters and wait for every delivery;
3. record (event, person token, tokens) links and merges in the vault, for re-identification;
4. produce the changed clusters to `link.state`, our own compacted changelog, and wait.
Only then is the batch committed (`agents.batched`). A crash before 4 replays the batch
against the previous state and produces the same outputs again (de-duplicable by event id); a
crash after 4 but before the commit re-links records already in the state, which is a no-op.

State is restored by reading `link.state` to partition EOF (`streams.kafka.reader.read_to_end`), never to
a ListOffsets end offset, and not through a Faust table: Tansu reports wrong end offsets and Faust's
table recovery relies on them (FAUST-NOTES.md).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import faust
import psycopg

from agents.batched import BatchedConsumer
from streams import metrics, topics
from streams.deadletter import DECODE_ERROR, INTERNAL, Output, RawRecord, dead_letter
from streams.kafka.admin import compacted, ensure_topics
from streams.kafka.producer import DeliveringProducer
from streams.kafka.reader import read_to_end
from streams.linkage.linker import Linker
from streams.linkage.outcome import Merge, Review
from streams.linkage.review import ReviewStore
from streams.linkage.tokens import FUZZY_KINDS
from streams.linkage.view_tokens import ViewTokens
from streams.pg import retry_while_down
from streams.privacy.vault import Vault
from streams.settings import Settings

log = logging.getLogger(__name__)

STAGE = "linker"
LINK_STATE = topics.LINK_STATE  # the linker's own compacted changelog
_DROPPED = ("tokens", "invalid", "profiles", "view_recipients")


class MalformedRecord(ValueError):
    """A `link.identifiers` value that is not the contract's JSON record."""


def _dumps(doc: Mapping[str, Any]) -> bytes:
    return json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()


def parse_record(value: bytes | None) -> dict[str, Any]:
    """Decode and check one `link.identifiers` value (docs/contracts.md)."""
    try:
        doc = json.loads(value or b"")
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedRecord(f"not JSON: {type(exc).__name__}") from None
    if not isinstance(doc, dict):
        raise MalformedRecord("not a JSON object")
    if not isinstance(doc.get("event_id"), str) or not doc["event_id"]:
        raise MalformedRecord("event_id missing")
    if not isinstance(doc.get("subject_index"), int):
        raise MalformedRecord("subject_index missing")
    if not isinstance(doc.get("source_partner"), str):
        raise MalformedRecord("source_partner missing")
    tokens = doc.get("tokens")
    if not isinstance(tokens, dict) or not all(isinstance(t, str) for t in tokens.values()):
        raise MalformedRecord("tokens must map kinds to strings")
    return doc


def _forget_request(value: bytes | None) -> list[str] | None:
    """Person tokens of a `{"kind": "forget", "person_tokens": [...]}` record, else None."""
    if not value or b'"forget"' not in value:
        return None
    try:
        doc = json.loads(value)
    except ValueError:
        return None
    if not isinstance(doc, dict) or doc.get("kind") != "forget":
        return None
    tokens = doc.get("person_tokens")
    if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens):
        raise MalformedRecord("forget record needs person_tokens: a list of strings")
    return tokens


def _review_decision(value: bytes | None) -> dict[str, Any] | None:
    """A `{"kind": "review_decision", ...}` record (`streams.linkage.review`), else None."""
    if not value or b'"review_decision"' not in value:
        return None
    try:
        doc = json.loads(value)
    except ValueError:
        return None
    if not isinstance(doc, dict) or doc.get("kind") != "review_decision":
        return None
    if not all(isinstance(doc.get(k), str) for k in ("review_id", "a", "b", "reviewer")) or not isinstance(
        doc.get("accept"), bool
    ):
        raise MalformedRecord("review_decision needs review_id, a, b, reviewer (strings) and accept (bool)")
    return doc


def restore(kafka_config: dict[str, Any], topic: str = LINK_STATE) -> Linker:
    """Replay the changelog to partition EOF; the last value per key wins, empty values delete."""
    state: dict[str, dict[str, Any] | None] = {}
    for msg in read_to_end(kafka_config, topic, timeout=300.0):
        key, value = msg.key(), msg.value()
        if key is None:
            continue
        state[key.decode()] = json.loads(value) if value else None
    return Linker.from_state(state)


class LinkerStage:
    """Batch processing of the agent, without Faust (so it can be run and tested on its own)."""

    def __init__(
        self,
        send: Callable[[list[Output]], Any],
        load: Callable[[], Linker],
        vault: Vault | None,
        view_tokens: ViewTokens | None = None,
        retry_backoff: float = 1.0,
        reviews: ReviewStore | None = None,
    ) -> None:
        self._send, self._load, self._vault, self._backoff = send, load, vault, retry_backoff
        self._reviews = reviews
        self._view_tokens = view_tokens  # None: no person view is fed (nothing keyed by `p.` is)
        self._view_recipients: list[str] = []  # as the latest record named them (review merges)
        self.linker: Linker | None = None
        self.queued: list[tuple[Review, str]] = []  # what went to review (kept when there is no store)

    def invalidate(self) -> None:
        """Forget in-memory state (partition revoked): the next batch restores from the changelog."""
        self.linker = None

    def process(self, records: Iterable[RawRecord]) -> int:
        if self.linker is None:
            started = time.monotonic()
            self.linker = self._load()
            log.info(
                "linker state restored: %d clusters in %.1fs", len(self.linker), time.monotonic() - started
            )
        linker = self.linker
        outputs: list[Output] = []
        links: list[tuple[str, int, str, list[str]]] = []
        merges: list[tuple[str, str]] = []
        queued: list[tuple[Review, str]] = []
        for record in records:
            started = time.perf_counter()
            try:
                forget = _forget_request(record.value)
                if forget is not None:
                    # Erasure (streams/rights): the person can no longer be linked or re-linked.
                    erased = [t for token in forget for t in linker.forget_person(token)]
                    log.info("forgot %d person token(s) on an erasure request", len(erased))
                    continue
                decision = _review_decision(record.value)
                if decision is not None:
                    decided = linker.decide(decision["a"], decision["b"], decision["accept"])
                    why = {
                        "rule": "review",
                        "review_id": decision["review_id"],
                        "reviewer": decision["reviewer"],
                    }
                    rid = f"review:{decision['review_id']}"
                    outputs += view_merges(decided, self._view_recipients, self._view_tokens, rid, why)
                    merges += [(m.from_, m.into) for m in decided]
                    continue
                doc = parse_record(record.value)
                outcome = linker.link(doc)
            except MalformedRecord as exc:
                outputs.append(dead_letter(record, STAGE, DECODE_ERROR, str(exc)))
                metrics.count_dead_letter(STAGE, DECODE_ERROR)
                continue
            except Exception as exc:  # a bug: dead-letter it and carry on (Faust would skip it silently)
                log.exception("linker failed on %s/%d/%d", record.topic, record.partition, record.offset)
                outputs.append(dead_letter(record, STAGE, INTERNAL, type(exc).__name__))
                metrics.count_dead_letter(STAGE, INTERNAL)
                continue
            person = outcome.person
            extra: dict[str, Any] = {}
            if outcome.evidence:
                extra["link"] = outcome.evidence  # why this record joined the people it did
            if outcome.reviews:
                extra["review"] = [r.id for r in outcome.reviews]
            self._view_recipients = list(doc.get("view_recipients") or self._view_recipients)
            outputs += view_outputs(doc, person, outcome.merges, self._view_tokens, extra)
            merges += [(m.from_, m.into) for m in outcome.merges]
            queued.extend((r, doc["event_id"]) for r in outcome.reviews)
            if person is not None:
                links.append((doc["event_id"], doc["subject_index"], person, _exact_tokens(doc["tokens"])))
            metrics.PROCESSING_TIME.labels(stage="link").observe(time.perf_counter() - started)
        self._send(outputs)
        # Vault and review writes block the stream until they succeed: nothing may go missing.
        if (vault := self._vault) is not None:
            self._retry(lambda: vault.link_many(links), "vault links")
            self._retry(lambda: vault.merge_many(merges), "vault merges")
        if (reviews := self._reviews) is not None:
            self._retry(lambda: reviews.queue(queued), "review queue")
        self.queued.extend(queued)
        state = linker.drain_changes()
        self._send(
            [Output(LINK_STATE, pt.encode(), _dumps(doc) if doc else None) for pt, doc in state.items()]
        )
        return len(outputs)

    def _retry(self, write: Callable[[], Any], what: str) -> None:
        """`write` again while PostgreSQL fails; a fault outside PostgreSQL is a bug and raises."""
        retry_while_down(write, what=what, unavailable=(psycopg.Error,), backoff=self._backoff)


def register(
    app: faust.App,
    settings: Settings,
    *,
    view_tokens: ViewTokens | None = None,
    vault: Vault | None = None,
    producer: DeliveringProducer | None = None,
    use_vault: bool = True,
) -> BatchedConsumer:
    """Add the linker agent to `app`; creates `link.state` and the vault tables at start."""
    from streams.pg import ensure_database

    ensure_topics(settings, [compacted(LINK_STATE, 1)])
    reviews = None
    if vault is None and use_vault:
        ensure_database(settings.pg_dsn("linker"), settings.pg_dsn_setting("linker"))
        vault = Vault(settings.pg_dsn("linker"))
    if use_vault:
        reviews = ReviewStore(settings.pg_dsn("linker"))
    kafka_config = settings.kafka_config()
    out = producer or DeliveringProducer(kafka_config)
    stage = LinkerStage(out.send_all, lambda: restore(kafka_config), vault, view_tokens, reviews=reviews)
    # ~1.2 records per event on one partition: Faust's per-event Stream cost would make the
    # linker the bottleneck (agents/batched.py). A failed batch is replayed from the commit.
    return BatchedConsumer.as_service(
        app,
        settings,
        [topics.LINK_IDENTIFIERS],
        stage.process,
        group=f"{settings.consumer_group}-linker",
        name="linker",
        on_revoke=stage.invalidate,
    )


def view_outputs(
    doc: Mapping[str, Any],
    person: str | None,
    caused: Iterable[Merge],
    view_tokens: ViewTokens | None,
    extra: Mapping[str, Any] | None = None,
) -> list[Output]:
    """What one linked record sends to `link.person` (docs/contracts.md).

    One fact for the area counts, keyed by event id and without a person token, holding the
    factors the enforcer let into them; then, per recipient whose person view the enforcer let the
    record into, a fact keyed by that recipient's own token for the person, with only its granted
    factors and its coarsened time; and each merge the record caused, once per person view.
    `extra` (the linkage evidence, review ids) goes on the area fact, the record's own.
    """
    area = {k: v for k, v in doc.items() if k not in _DROPPED}
    area.update(extra or {}, kind="fact", person_token=None)
    out = [Output(topics.LINK_PERSON, str(doc["event_id"]).encode(), _dumps(area))]
    if person is None or view_tokens is None:
        return out
    profiles = doc.get("profiles") or {}
    for recipient, entry in sorted(profiles.items()):
        token = view_tokens.token(recipient, person)
        fact = {
            "kind": "fact",
            "event_id": doc["event_id"],
            "subject_index": doc["subject_index"],
            "event_type": doc.get("event_type"),
            "source_partner": doc["source_partner"],
            "role": doc.get("role"),
            "occurred_at": entry["occurred_at"],
            "factors": list(entry["factors"]),
            "person_token": token,
            "recipient": recipient,
        }
        out.append(Output(topics.LINK_PERSON, token.encode(), _dumps(fact)))
    out += view_merges(caused, doc.get("view_recipients") or (), view_tokens, str(doc["event_id"]))
    return out


def view_merges(
    merges: Iterable[Merge],
    recipients: Iterable[str],
    view_tokens: ViewTokens | None,
    event_id: str,
    why: Mapping[str, Any] | None = None,
) -> list[Output]:
    """Each merge once per person view, in that view's tokens (keyed by `from`, as the views need)."""
    out: list[Output] = []
    if view_tokens is None:
        return out
    recipients = list(recipients)
    for m in merges:
        for recipient in recipients:
            source = view_tokens.token(recipient, m.from_)
            doc: dict[str, Any] = {
                "kind": "merge",
                "from": source,
                "into": view_tokens.token(recipient, m.into),
                "recipient": recipient,
                "event_id": event_id,
            }
            if why:
                doc["why"] = dict(why)
            out.append(Output(topics.LINK_PERSON, source.encode(), _dumps(doc)))
    return out


def _exact_tokens(tokens: Mapping[str, str]) -> list[str]:
    """The tokens the vault can be asked about (the fuzzy sets only serve linkage)."""
    return sorted(t for kind, t in tokens.items() if kind not in FUZZY_KINDS)


def _raw_record(event: Any) -> RawRecord:
    msg = event.message
    headers = msg.headers or []
    if isinstance(headers, dict):
        headers = list(headers.items())
    return RawRecord(msg.topic, msg.partition, msg.offset, msg.key, msg.value, list(headers))
