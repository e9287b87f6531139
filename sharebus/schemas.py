"""`sharebus schemas register | check`: the catalogue (working tree) against the schema registry.

`check` asks the registry itself (`POST /compatibility/subjects/<s>/versions?verbose=true`, which
applies each subject's own compatibility level) so the answer is the one producers will get;
subjects not registered yet are reported as new, not as errors.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import typer

from sharebus.common import fail
from streams import topics
from streams.avro.catalogue import Catalogue, load_catalogue
from streams.errors import SharingBusError
from streams.settings import Settings, get_settings

schemas_app = typer.Typer(
    help="Event schemas: register them, check changes against the registry.", no_args_is_help=True
)

_REGISTRY = typer.Option(None, "--registry", help="Registry URL (default: SHARINGBUS_SCHEMA_REGISTRY_URL)")
_SCHEMAS = typer.Option(None, "--schemas", help="Schemas directory (default: SHARINGBUS_SCHEMAS_DIR)")
_CONTENT = "application/vnd.schemaregistry.v1+json"


def _setup(registry: str | None, schemas: Path | None) -> tuple[Settings, Catalogue, httpx.Client]:
    settings = get_settings()
    if registry:
        settings = settings.model_copy(update={"schema_registry_url": registry})
    catalogue = load_catalogue(schemas or settings.schemas_dir)
    conf = settings.registry_config()
    auth = None
    if "basic.auth.user.info" in conf:
        user, _, password = conf["basic.auth.user.info"].partition(":")
        auth = httpx.BasicAuth(user, password)
    client = httpx.Client(
        base_url=conf["url"].rstrip("/"), auth=auth, timeout=30, headers={"Accept": _CONTENT}
    )
    return settings, catalogue, client


def _subjects(catalogue: Catalogue, partner: str | None) -> list[tuple[str, str]]:
    """(subject, event_type) for every raw topic, optionally of one partner."""
    if partner is not None:
        catalogue.partner(partner)
    return [(topics.value_subject(t), et) for p, et, t in catalogue.raw_topics() if partner in (None, p)]


def _post(client: httpx.Client, url: str, body: dict[str, Any]) -> httpx.Response:
    try:
        return client.post(url, content=json.dumps(body), headers={"Content-Type": _CONTENT})
    except httpx.HTTPError as exc:
        raise SharingBusError(f"schema registry at {client.base_url} unreachable: {exc}") from None


def _error(response: httpx.Response) -> str:
    try:
        body = response.json()
        message, code = body.get("message", response.text), body.get("error_code")
        return f"{message} (HTTP {response.status_code}, code {code})"
    except ValueError:
        return f"HTTP {response.status_code}: {response.text[:200]}"


@schemas_app.command("register")
def register_schemas(
    registry: str | None = _REGISTRY,
    schemas: Path | None = _SCHEMAS,
    partner: str | None = typer.Option(None, "--partner", help="Only this partner's subjects"),
) -> None:
    """Register every event type's schema under each publishing partner's raw-topic subject."""
    try:
        _, catalogue, client = _setup(registry, schemas)
        failed = 0
        with client:
            for subject, event_type in _subjects(catalogue, partner):
                body = {"schemaType": "AVRO", "schema": json.dumps(catalogue.event_type(event_type).schema)}
                r = _post(client, f"/subjects/{quote(subject, safe='')}/versions", body)
                if r.status_code == 200:
                    typer.echo(f"registered {subject}: id {r.json().get('id')}")
                else:
                    failed += 1
                    typer.echo(f"error: {subject}: {_error(r)}", err=True)
    except SharingBusError as exc:
        fail(str(exc))
    if failed:
        fail(f"{failed} subject(s) not registered")


@schemas_app.command("check")
def check_schemas(
    registry: str | None = _REGISTRY,
    schemas: Path | None = _SCHEMAS,
    partner: str | None = typer.Option(None, "--partner", help="Only this partner's subjects"),
) -> None:
    """Compare the working tree with the registry under each subject's compatibility level."""
    counts = {"unchanged": 0, "compatible": 0, "new": 0, "incompatible": 0}
    try:
        _, catalogue, client = _setup(registry, schemas)
        with client:
            for subject, event_type in _subjects(catalogue, partner):
                status = _check_one(client, subject, catalogue.event_type(event_type).schema)
                counts[status] += 1
    except SharingBusError as exc:
        fail(str(exc))
    summary = ", ".join(f"{n} {k}" for k, n in counts.items())
    typer.echo(f"checked {sum(counts.values())} subject(s): {summary}")
    if counts["incompatible"]:
        fail(f"{counts['incompatible']} subject(s) would reject the working-tree schema")


def _check_one(client: httpx.Client, subject: str, schema: dict[str, Any]) -> str:
    body = {"schemaType": "AVRO", "schema": json.dumps(schema)}
    path = quote(subject, safe="")
    found = _post(client, f"/subjects/{path}", body)
    if found.status_code == 200:
        typer.echo(f"unchanged {subject} (version {found.json().get('version')})")
        return "unchanged"
    if found.status_code == 404 and found.json().get("error_code") == 40401:
        typer.echo(f"new {subject} (not registered yet)")
        return "new"
    if found.status_code != 404:
        raise SharingBusError(f"{subject}: {_error(found)}")
    r = _post(client, f"/compatibility/subjects/{path}/versions?verbose=true", body)
    if r.status_code != 200:
        raise SharingBusError(f"{subject}: {_error(r)}")
    answer = r.json()
    if answer.get("is_compatible"):
        typer.echo(f"compatible {subject}")
        return "compatible"
    for message in answer.get("messages") or ["incompatible (the registry gave no details)"]:
        typer.echo(f"incompatible {subject}: {message}", err=True)
    return "incompatible"


def register(app: typer.Typer) -> None:
    app.add_typer(schemas_app, name="schemas")
