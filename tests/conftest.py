"""Session fixtures on real components: Tansu broker, embedded registry, a fresh PostgreSQL database.

Factories (`topic_factory`, `settings_factory`) give each test its own names so tests never share
state through the session-wide broker.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from streams.kafka.admin import TopicSpec, ensure_topics
from streams.kafka.broker import EmbeddedBroker
from streams.settings import Settings
from tests.support.stack import Tansu

PG_ADMIN_DSN = os.environ.get("SHARINGBUS_TEST_PG_ADMIN_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"


@pytest.fixture(scope="session")
def broker() -> Iterator[EmbeddedBroker]:
    with EmbeddedBroker() as b:
        yield b


@pytest.fixture(scope="session")
def registry(broker: EmbeddedBroker) -> Iterator[Any]:
    from streams.registry import EmbeddedRegistry

    with EmbeddedRegistry(bootstrap=broker.bootstrap) as reg:
        yield reg


@pytest.fixture(scope="session")
def pg_dsn() -> Iterator[str]:
    """A database of its own for this test session, dropped at the end."""
    name = f"sharingbus_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    dsn = PG_ADMIN_DSN.rsplit("/", 1)[0] + f"/{name}"
    try:
        yield dsn
    finally:
        with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="session")
def settings_factory(
    broker: EmbeddedBroker, registry: Any, pg_dsn: str, tmp_path_factory: pytest.TempPathFactory
) -> Callable[..., Settings]:
    """Settings pointing at the session's real components; keyword arguments override fields."""

    def make(**overrides: Any) -> Settings:
        base = tmp_path_factory.mktemp("sb")
        values: dict[str, Any] = {
            "bootstrap_servers": broker.bootstrap,
            "schema_registry_url": registry.url,
            "postgres_dsn": pg_dsn,
            "keyring_path": base / "keyring.json",
            "data_dir": base / "var",
            "consumer_group": f"sb-test-{uuid.uuid4().hex[:8]}",
            "area_quiet_seconds": 3.0,  # closed weeks publish 3 s after their last change
        }
        values.update(overrides)
        return Settings(**values)

    return make


@pytest.fixture
def settings(settings_factory: Callable[..., Settings]) -> Settings:
    return settings_factory()


@pytest.fixture
def topic_factory(settings: Settings) -> Callable[..., str]:
    """Creates a uniquely named topic (explicit partitions) and returns its name."""

    def make(prefix: str = "test", partitions: int = 4, config: dict[str, str] | None = None) -> str:
        name = f"{prefix}.{uuid.uuid4().hex[:10]}"
        ensure_topics(settings, [TopicSpec(name, partitions, config or {})])
        return name

    return make


class StackPool:
    """Isolated buses: each `make()` starts its own Tansu broker, registry and PostgreSQL database.

    Raw, shared and audit topic names are fixed by the catalogue, so tests that run workers must
    not share a broker (two enforcer groups on one raw partition would interleave one audit chain).
    Tansu and the registry start in well under a second, so isolation is cheap.
    """

    def __init__(self, tmp_path_factory: pytest.TempPathFactory) -> None:
        self._tmp = tmp_path_factory
        self._brokers: list[Tansu] = []
        self._registries: list[Any] = []
        self._databases: list[str] = []

    def make(self, **overrides: Any) -> Settings:
        from streams.privacy.keys import KeyRing
        from streams.registry import EmbeddedRegistry

        b = Tansu().start()
        self._brokers.append(b)
        reg = EmbeddedRegistry(bootstrap=b.bootstrap).start()
        self._registries.append(reg)
        name = f"sharingbus_stack_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        self._databases.append(name)
        base = self._tmp.mktemp("stack")
        values: dict[str, Any] = {
            "bootstrap_servers": b.bootstrap,
            "schema_registry_url": reg.url,
            "postgres_dsn": PG_ADMIN_DSN.rsplit("/", 1)[0] + f"/{name}",
            "keyring_path": base / "keyring.json",
            "data_dir": base / "var",
            "consumer_group": "sharingbus",
            "area_quiet_seconds": 3.0,  # closed weeks publish 3 s after their last change
        }
        values.update(overrides)
        settings = Settings(**values)
        KeyRing.load_or_create(settings.keyring_path)
        return settings

    def close(self) -> None:
        for reg in self._registries:
            reg.stop()
        for b in self._brokers:
            b.stop()
        with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
            for name in self._databases:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def stack_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., Settings]]:
    """`make(**settings_overrides) -> Settings` of a fresh isolated bus (see StackPool)."""
    pool = StackPool(tmp_path_factory)
    yield pool.make
    pool.close()


@pytest.fixture(scope="module")
def module_stack_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., Settings]]:
    """Like `stack_factory`, shared by the tests of one module (start one worker, test it often)."""
    pool = StackPool(tmp_path_factory)
    yield pool.make
    pool.close()
