"""`sharebus linkage review`: the clerical review queue of links the linker was unsure of.

    sharebus linkage review list [--limit N] [--json]
    sharebus linkage review accept REVIEW_ID --auth-token TOKEN --reason "..."
    sharebus linkage review reject REVIEW_ID --auth-token TOKEN --reason "..."

`list` prints each pending question: the two person tokens, the match weight and which
comparisons agreed. `accept` merges the two people, `reject` keeps them apart for good; both are
audited (`linkage_review_audit`) with the reviewer and the reason, refusals included, and reach
the linker as a record on `link.identifiers` (streams/linkage/review.py).

Deciding needs a verified identity: a bearer token (`sharebus auth token --partner P --role
linkage_reviewer --subject S`, or one from the deployment's issuer) whose caller acts for a
data-owning partner and holds the `linkage_reviewer` role. The audit row names the reviewer as
`<partner>:<subject>` from the verified claims, never from a flag. Listing shows only person
tokens, weights and level names, and needs the database role that can read the queue.
"""

from __future__ import annotations

import json

import psycopg
import typer

from sharebus.common import fail
from streams import topics
from streams.deadletter import Output
from streams.errors import SharingBusError
from streams.identity import AuthError, TokenVerifier
from streams.kafka.producer import DeliveringProducer
from streams.linkage.review import ReviewError, ReviewRow, ReviewStore, decision_record
from streams.settings import get_settings

linkage_app = typer.Typer(help="Record linkage: the review queue of uncertain links.", no_args_is_help=True)
review_app = typer.Typer(help="List and resolve pairs the linker was unsure of.", no_args_is_help=True)
linkage_app.add_typer(review_app, name="review")


def _store(dsn: str | None) -> ReviewStore:
    try:
        return ReviewStore(dsn or get_settings().pg_dsn("rights"))
    except psycopg.Error as exc:
        fail(f"review queue unavailable: {type(exc).__name__}")


def _line(row: ReviewRow) -> str:
    agreed = ", ".join(
        f"{name} {c['level']} ({c['weight']:+.1f})"
        for name, c in row.explanation.get("comparisons", {}).items()
    )
    return f"{row.id}\t{row.person_a}\t{row.person_b}\tweight {row.weight:.2f}\t{agreed}"


@review_app.command("list")
def list_cmd(
    limit: int = typer.Option(100, "--limit", min=1, help="At most this many, oldest first"),
    as_json: bool = typer.Option(False, "--json", help="JSON Lines instead of tab-separated text"),
    dsn: str | None = typer.Option(None, "--dsn", help="PostgreSQL DSN (default: SHARINGBUS_POSTGRES_DSN)"),
) -> None:
    """Pending questions: id, person A, person B, match weight, what agreed (and each one's weight)."""
    try:
        rows = _store(dsn).pending(limit)
    except psycopg.Error as exc:
        fail(f"review queue unavailable: {type(exc).__name__}")
    for row in rows:
        typer.echo(json.dumps(row.to_json(), sort_keys=True) if as_json else _line(row))
    if not rows:
        typer.echo("no pending reviews", err=True)


REVIEWER_ROLE = "linkage_reviewer"


def _reviewer(token: str) -> str:
    """`<partner>:<subject>` of a verified caller allowed to decide, else one line and exit 2."""
    try:
        principal = TokenVerifier.from_settings(get_settings()).verify(token)
    except AuthError as exc:
        fail(f"not authenticated: {exc}", code=2)
    except SharingBusError as exc:
        fail(str(exc))
    if principal.partner is None or not principal.has_role(REVIEWER_ROLE):
        fail(
            f"{principal.subject} may not decide reviews: needs a partner and the {REVIEWER_ROLE} role",
            code=2,
        )
    return f"{principal.partner}:{principal.subject}"


def _decide(review_id: str, accept: bool, token: str, reason: str, dsn: str | None) -> None:
    settings = get_settings()
    reviewer = _reviewer(token)
    store = _store(dsn)
    try:
        with store.deciding(review_id, accept, reviewer, reason) as row:
            producer = DeliveringProducer(settings.kafka_config())
            value = decision_record(row, accept, reviewer)
            key = f"review:{row.id}".encode()
            producer.send_all([Output(topics.LINK_IDENTIFIERS, key, value, partition=0)], deadline_s=30.0)
    except ReviewError as exc:
        fail(str(exc), code=2)
    except psycopg.Error as exc:
        fail(f"review queue unavailable: {type(exc).__name__}")
    except SharingBusError as exc:
        fail(f"decision not sent, the review stays pending: {exc}")
    typer.echo(f"{'accepted' if accept else 'rejected'}: {review_id}")


@review_app.command("accept")
def accept(
    review_id: str = typer.Argument(..., help="The review's id (r.…), from `list`"),
    token: str = typer.Option(..., "--auth-token", help="Bearer token of the reviewer (sharebus auth token)"),
    reason: str = typer.Option(..., "--reason", help="Why they are one person (audited)"),
    dsn: str | None = typer.Option(None, "--dsn", help="PostgreSQL DSN (default: SHARINGBUS_POSTGRES_DSN)"),
) -> None:
    """The two are one person: the linker merges them (and the views move the profile)."""
    _decide(review_id, True, token, reason, dsn)


@review_app.command("reject")
def reject(
    review_id: str = typer.Argument(..., help="The review's id (r.…), from `list`"),
    token: str = typer.Option(..., "--auth-token", help="Bearer token of the reviewer (sharebus auth token)"),
    reason: str = typer.Option(..., "--reason", help="Why they are different people (audited)"),
    dsn: str | None = typer.Option(None, "--dsn", help="PostgreSQL DSN (default: SHARINGBUS_POSTGRES_DSN)"),
) -> None:
    """The two are different people: the linker never links them, nor asks again."""
    _decide(review_id, False, token, reason, dsn)


def register(app: typer.Typer) -> None:
    app.add_typer(linkage_app, name="linkage")
