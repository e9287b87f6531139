"""`sharebus request`: a controller asks the bus to rectify, erase, restrict or unrestrict.

The request is an event (`bus.subject_request`) on the partner's own raw topic, checked here with
the same rules the bus applies, so a malformed request fails at once rather than in the audit.
Prints `request: <id>`; the outcome is in the audit ledger and `sharebus subject-access`.

Only an officer of the controller may file one (the rights roles file's `officers`, the people who
answer data subject rights for it): the caller is the verified token in `SHARINGBUS_IDENTITY_TOKEN`
and the request carries it as `<partner>:<subject>`. Data owners re-identify; they do not erase or
rectify on a person's behalf unless the file also lists them as officers.
"""

from __future__ import annotations

import typer

from sharebus.common import announce, fail
from sharebus.officers import Refusal, refuse, verified_officer
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
    partner: str | None = typer.Option(
        None, "--partner", help="The controller asking, owner of the events (default: the caller's)"
    ),
    kind: str = typer.Option(..., "--kind", help=" | ".join(KINDS)),
    event_id: list[str] = typer.Option([], "--event-id", help="An event the request is about (repeatable)"),
    identifier: list[str] = typer.Option(
        [], "--identifier", help=f"KIND=VALUE naming the person; KIND in {', '.join(IDENTIFIER_KINDS)}"
    ),
    correct: list[str] = typer.Option(
        [], "--correct", help="rectify: PATH=VALUE, VALUE as JSON (bare text is a string), e.g. subject.upn=…"
    ),
    reason: str = typer.Option(..., "--reason", help="Why (kept in the audit ledger)"),
) -> None:
    """Publish a data subject request; every recipient of the events is reached by the bus.
    Officers of the controller only (SHARINGBUS_IDENTITY_TOKEN, SHARINGBUS_RIGHTS_ROLES_PATH)."""
    settings = get_settings()
    try:
        catalogue = load_catalogue(settings.schemas_dir)
        caller, partner = verified_officer(settings, partner, list(catalogue.partners))
    except Refusal as exc:
        refuse("request", exc)
    except SharingBusError as exc:
        fail(str(exc))
    try:
        body = build_request(
            kind,
            reason=reason,
            requester=f"{partner}:{caller.subject}",
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
