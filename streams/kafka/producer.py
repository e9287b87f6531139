"""A confluent-kafka producer that returns only when every record of a batch is acknowledged.

The enforcer must not let an input offset be committed before its outputs are safe (at-least-once),
and Faust acks a batch as soon as the agent body returns: so the body blocks (in a thread) until
`send_all` has confirmed every delivery, re-sending whatever failed until it succeeds.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Producer

from streams.deadletter import Output
from streams.errors import BrokerError

log = logging.getLogger(__name__)

PRODUCER_DEFAULTS: dict[str, Any] = {
    "acks": "all",
    "enable.idempotence": True,
    "linger.ms": 5,
    "batch.num.messages": 10000,
    "queue.buffering.max.messages": 500000,
    "queue.buffering.max.kbytes": 1048576,
    "compression.type": "lz4",
    "message.timeout.ms": 60000,
    # Back within a second of a link's return (librdkafka's default backs off up to 10 s), well
    # inside the `STALL_S` a stalled producer is given before it is judged wedged.
    "reconnect.backoff.max.ms": 1000,
    "log_level": 3,
    # Not "delivery.report.only.error": after a fatal idempotence error, confluent-kafka 2.x then
    # hands the callback messages in an inconsistent error state (SystemError from flush()).
}


# For a producer of hash-chained records (the audit ledger, written by the enforcer). A record that
# fails for good while a later one of its partition is delivered leaves a gap the chain reports as
# a break. So: never time a record out (librdkafka's gapless guarantee does not cover
# message.timeout.ms), and make every other error that could leave a gap fatal; on a fatal error
# `finish` starts a new producer and the caller decides the batch again from the chain as the
# broker holds it. A broker that stays away stalls the batch (and shows as lag), never a gap.
CHAINED_PRODUCER: dict[str, Any] = {"message.timeout.ms": 0, "enable.gapless.guarantee": True}

# Nothing delivered for this long while the broker answers: the producer is wedged (see `_flush`).
STALL_S = 10.0
# No delivery for this long: ask whether the broker answers (an outage is waited for, not a wedge).
PROBE_AFTER_S = 1.0

_Ident = tuple[str, bytes | None, bytes | None]  # topic, key, value of a produced record


@dataclass
class Delivery:
    """Records handed to the producer by `start`; `failed`/`errors` fill in from delivery reports."""

    outputs: list[Output]
    failed: list[_Ident | None] = field(default_factory=list)
    errors: list[KafkaError] = field(default_factory=list)

    def failed_outputs(self) -> list[Output]:
        """The records whose delivery failed, as given (failures are rare: a scan is fine)."""
        if not self.failed:
            return []
        if None in self.failed:  # a report that named no message
            return list(self.outputs)
        wanted = Counter(self.failed)
        found = []
        for out in self.outputs:
            ident = (out.topic, out.key, out.value)
            if wanted[ident] > 0:
                wanted[ident] -= 1
                found.append(out)
        return found


def _on_failure(
    failed: list[_Ident | None], errors: list[KafkaError], latencies: list[float] | None = None
) -> Any:
    """One delivery callback for a whole batch; successes return at once.

    It notes which message failed; `Delivery.failed_outputs` finds the original records (a closure
    per record costs an allocation per output, and delivery reports carry no headers). Given a
    `latencies` list, it also notes each success's produce-to-acknowledgement time (librdkafka's
    own measurement), for a latency budget (`streams.kafka.stages`).
    """

    def on_delivery(err: KafkaError | None, msg: Any) -> None:
        if err is None:
            if latencies is not None:
                latencies.append(msg.latency() or 0.0)
            return
        ident: _Ident | None
        try:
            ident = (msg.topic(), msg.key(), msg.value())
        except Exception:  # after a fatal error the report may carry a pending SystemError: all failed
            ident = None
        failed.append(ident)
        errors.append(err)

    return on_delivery


def _is_fatal(err: KafkaError) -> bool:
    """The producer is fatal: the error says so, or it is what a producer already fatal answers."""
    return bool(err.fatal()) or err.code() == KafkaError._FATAL


class DeliveringProducer:
    """Produce a batch and wait for every acknowledgement; failed records are re-sent."""

    def __init__(
        self, kafka_config: dict[str, Any], retry_backoff: float = 0.5, stall_s: float = STALL_S
    ) -> None:
        conf = dict(PRODUCER_DEFAULTS)
        conf.update(kafka_config)
        self._conf = conf
        self._producer = Producer(conf)
        self._backoff = retry_backoff
        self._stall_s = stall_s

    def send_all(self, outputs: Sequence[Output], deadline_s: float | None = None) -> int:
        """Send `outputs` and block until all are delivered; returns the number of re-sends.

        Failed records are re-sent, which may reorder them after later records of the same
        partition: fine for de-duplicable outputs, not for hash-chained audit records (see
        `try_send_all`). Raises BrokerError only when `deadline_s` passes with records undelivered.
        """
        pending: list[Output] = list(outputs)
        resends = 0
        deadline = time.monotonic() + deadline_s if deadline_s is not None else None
        while pending:
            failed, errors = self.try_send_all(pending, deadline)
            if not failed:
                return resends
            resends += len(failed)
            log.warning("re-sending %d undelivered records: %s", len(failed), errors[0] if errors else "")
            if deadline is not None and time.monotonic() > deadline:
                raise BrokerError(f"{len(failed)} records undelivered: {errors[0] if errors else ''}")
            time.sleep(self._backoff)
            pending = failed
        return resends

    def try_send_all(
        self, outputs: Sequence[Output], deadline: float | None = None
    ) -> tuple[list[Output], list[KafkaError]]:
        """Send once and wait for every delivery report; returns what failed (and why)."""
        return self.finish(self.start(outputs), deadline)

    def start(self, outputs: Sequence[Output], latencies: list[float] | None = None) -> Delivery:
        """Hand every record to librdkafka without waiting; `finish` waits for the outcome.

        Between the two the caller may do other work (the enforcer decides its next batch) while
        librdkafka's own threads deliver: nothing else may be produced meanwhile, since `finish`
        waits for everything queued. `latencies`, if given, fills with each delivered record's
        produce-to-acknowledgement time in seconds.
        """
        delivery = Delivery(list(outputs))
        failed, errors = delivery.failed, delivery.errors
        try:
            produce = self._producer.produce
            on_delivery = _on_failure(failed, errors, latencies)
            for out in outputs:  # inlined: this loop runs ~3 times per enforced event
                partition = out.partition if out.partition is not None else -1
                while True:
                    try:
                        produce(
                            out.topic,
                            value=out.value,
                            key=out.key,
                            partition=partition,
                            on_delivery=on_delivery,
                            headers=out.headers or None,  # type: ignore[arg-type]  # list is invariant
                        )
                        break
                    except BufferError:
                        self._producer.poll(0.05)
        except KafkaException as exc:
            self._fatal(exc, errors)
        return delivery

    def finish(
        self, delivery: Delivery, deadline: float | None = None
    ) -> tuple[list[Output], list[KafkaError]]:
        """Wait for every record of `delivery` (and anything else queued); returns what failed."""
        errors = delivery.errors
        wedged = False
        if not any(_is_fatal(e) for e in errors):
            try:
                wedged = self._flush(deadline)
            except KafkaException as exc:
                self._fatal(exc, errors)
        if wedged:
            # Purged records fail with _PURGE_* reports (so the caller re-sends or re-decides them);
            # the new producer asks the broker for a fresh producer id.
            self._replace()
            return delivery.failed_outputs() or list(delivery.outputs), errors
        if any(_is_fatal(e) for e in errors):
            # An idempotent producer that lost its broker (e.g. a replaced one) stays fatal for
            # ever: start a new one; the caller re-decides and re-sends the whole batch.
            log.error("producer fatal error, starting a new producer: %s", errors[-1])
            self._replace()
            return list(delivery.outputs), errors
        return delivery.failed_outputs(), errors

    def _replace(self) -> None:
        """Discard the producer and start a new one.

        Purging records in flight on a gap-less producer is itself a fatal error, and so is
        anything a fatal producer is asked to do: expected here, since it is being thrown away.
        """
        try:
            self._producer.purge()
            self._producer.flush(5.0)
        except KafkaException as exc:
            log.warning("discarding the producer: %s", exc)
        self._producer = Producer(self._conf)

    def _flush(self, deadline: float | None) -> bool:
        """Wait until nothing is queued; True when the producer is wedged instead.

        Wedged: nothing delivered for `stall_s` while the broker answers. An idempotent producer
        whose broker lost its producer state (a replaced in-memory broker, e.g. the embedded Tansu)
        gets UNKNOWN_PRODUCER_ID for every request, and librdkafka answers that only by bumping
        its epoch locally: no error reaches the application and every record waits for
        message.timeout.ms (for ever on the audit ledger's producer). While the broker does not
        answer it is an outage, not a wedge: it is waited for, and the stall counts from its end
        (the broker is asked about every second, so an outage that ends just before the stall
        would have been judged is still seen).
        """
        outstanding = len(self._producer)
        progress_at = time.monotonic()
        probe_after = min(PROBE_AFTER_S, self._stall_s)
        while self._producer.flush(1.0) > 0:
            now = time.monotonic()
            if deadline is not None and now > deadline:
                raise BrokerError("timed out waiting for deliveries")
            left = len(self._producer)
            if left < outstanding:
                outstanding, progress_at = left, now
            elif now - progress_at > probe_after:
                if not self._broker_answers():
                    progress_at = time.monotonic()  # an outage: the stall counts from its end
                elif now - progress_at > self._stall_s:
                    log.warning(
                        "no delivery for %.0f s with %d records queued although the broker answers: "
                        "replacing the producer (a broker that forgot its producer id)",
                        now - progress_at,
                        left,
                    )
                    return True
        return False

    def _broker_answers(self) -> bool:
        try:
            return bool(self._producer.list_topics(timeout=2.0).brokers)
        except KafkaException:
            return False

    @staticmethod
    def _fatal(exc: KafkaException, errors: list[KafkaError]) -> None:
        err = exc.args[0] if exc.args else None
        if not (isinstance(err, KafkaError) and _is_fatal(err)):
            raise exc
        errors.append(err)

    def close(self, timeout: float = 10.0) -> None:
        self._producer.flush(timeout)
