"""`sharebus request`: a controller asks the bus to rectify, erase, restrict or unrestrict.

The request is an event (`bus.subject_request`) on the partner's own raw topic, checked here with
the same rules the bus applies, so a malformed request fails at once rather than in the audit.
Prints `request: <id>`; the outcome is in the audit ledger and `sharebus subject-access`.
"""

from __future__ import annotations

import typer

from sharebus.common import announce, fail
from streams import topics
from streams.avro.catalogue import load_catalogue
from streams.errors import SharingBusError
from streams.kafka.admin import TopicSpec, ensure_topics
from streams.publish.publisher import Publisher
from streams.rights.model import (
    IDENTIFIER_KINDS,
    KINDS,
    REQUEST_EVENT_TYPE,
    build_request,
    parse_assignments,
    parse_request,
)
from streams.settings import get_settings


def request(
    partner: str = typer.Option(..., "--partner", help="The controller asking (owner of the events)"),
    kind: str = typer.Option(..., "--kind", help=" | ".join(KINDS)),
    event_id: list[str] = typer.Option([], "--event-id", help="An event the request is about (repeatable)"),
    identifier: list[str] = typer.Option(
        [], "--identifier", help=f"KIND=VALUE naming the person; KIND in {', '.join(IDENTIFIER_KINDS)}"
    ),
    correct: list[str] = typer.Option(
        [], "--correct", help="rectify: PATH=VALUE, VALUE as JSON (bare text is a string), e.g. subject.upn=…"
    ),
    reason: str = typer.Option(..., "--reason", help="Why (kept in the audit ledger)"),
    requester: str = typer.Option(..., "--requester", help="Who asks, as <partner>:<person>"),
) -> None:
    """Publish a data subject request; every recipient of the events is reached by the bus."""
    settings = get_settings()
    try:
        catalogue = load_catalogue(settings.schemas_dir)
        body = build_request(
            kind,
            reason=reason,
            requester=requester,
            event_ids=event_id,
            identifiers=parse_assignments(identifier, "--identifier"),
            corrections=parse_assignments(correct, "--correct"),
        )
        ensure_topics(settings, [TopicSpec(topics.raw(partner, REQUEST_EVENT_TYPE))])
        with Publisher(settings, partner, catalogue) as publisher:
            record = publisher.prepare(REQUEST_EVENT_TYPE, body)
            parse_request(partner, record)  # the bus's own checks, before anything is sent
            sent = publisher.publish(REQUEST_EVENT_TYPE, record)
    except SharingBusError as exc:
        fail(str(exc))
    announce("request", sent.event_id)


def register(app: typer.Typer) -> None:
    app.command("request")(request)
