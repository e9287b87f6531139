"""`sharebus registry`: the embedded Confluent-compatible schema registry."""

from __future__ import annotations

from urllib.parse import urlparse

import typer

from sharebus.common import require_broker, serve
from streams import topics
from streams.registry import EmbeddedRegistry
from streams.settings import get_settings

DEFAULT_PORT = 8081


def _configured_port() -> int:
    """The port of SHARINGBUS_SCHEMA_REGISTRY_URL, so clients using the settings find the registry."""
    return urlparse(get_settings().schema_registry_url).port or DEFAULT_PORT


def registry(
    port: int | None = typer.Option(
        None, help="Port to listen on (default: the port of SHARINGBUS_SCHEMA_REGISTRY_URL; 0: a free port)"
    ),
    bootstrap: str | None = typer.Option(
        None, help="Kafka bootstrap servers (default: SHARINGBUS_BOOTSTRAP_SERVERS)"
    ),
    topic: str = typer.Option(topics.SCHEMAS, help="Compacted topic the schemas persist in"),
) -> None:
    """Serve the schema registry on loopback and print its URL; schemas persist in Kafka and a local copy."""
    settings = get_settings()
    servers = bootstrap or settings.bootstrap_servers
    require_broker(settings, servers)
    reg = EmbeddedRegistry(
        bootstrap=servers,
        port=_configured_port() if port is None else port,
        kafka_config=settings.kafka_config(**{"bootstrap.servers": servers}),
        topic=topic,
        copy_path=settings.schema_registry_copy_path or settings.data_dir / "registry" / f"{topic}.jsonl",
    )
    serve("registry", reg.start, lambda r: r.url)


def register(app: typer.Typer) -> None:
    app.command("registry")(registry)
