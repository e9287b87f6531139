"""docker-compose.yml against the Settings model, the Prometheus scrape config and Grafana provisioning.

No Docker engine is needed: the file is read as YAML, `${VAR:-default}` interpolated the way compose
does, and every SHARINGBUS_* variable is validated by building `Settings` from it.
"""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from streams.settings import ROLES, Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
FIELDS = {f"SHARINGBUS_{name.upper()}" for name in Settings.model_fields}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return dict(yaml.safe_load(COMPOSE_FILE.read_text()))


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return dict(compose["services"])


def interpolate(value: str) -> str:
    """Compose's `${VAR}` / `${VAR:-default}` with an empty environment; `${VAR:?}` as `<VAR>`."""
    value = re.sub(r"\$\{(\w+):\?[^}]*\}", lambda m: f"<{m.group(1)}>", str(value))
    return re.sub(r"\$\{(\w+)(?::?-([^}]*))?\}", lambda m: m.group(2) or "", value)


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: interpolate(v) for k, v in env.items()}


def command(service: dict[str, Any]) -> str:
    cmd = service.get("command", "")
    return " ".join(cmd) if isinstance(cmd, list) else str(cmd)


def healthcheck_text(service: dict[str, Any]) -> str:
    test = service["healthcheck"]["test"]
    return " ".join(test) if isinstance(test, list) else str(test)


def one_shot(service: dict[str, Any]) -> bool:
    return service.get("restart") == "no"


def test_every_sharingbus_variable_is_a_settings_field(compose: dict[str, Any]) -> None:
    used = set(re.findall(r"\bSHARINGBUS_[A-Z0-9_]+", COMPOSE_FILE.read_text()))
    assert used, "compose wires no settings"
    assert used <= FIELDS, f"not Settings fields: {sorted(used - FIELDS)}"
    for name, service in compose["services"].items():
        assert set(k for k in environment(service) if k.startswith("SHARINGBUS_")) <= FIELDS, name


def test_bus_services_get_valid_settings(
    services: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in list(os.environ):
        if name.startswith("SHARINGBUS_"):
            monkeypatch.delenv(name)
    for name in ("enforcer", "linker", "agents", "init"):
        env = environment(services[name])
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        settings = Settings()
        host, port = settings.bootstrap_servers.split(",")[0].rsplit(":", 1)
        assert host in services, f"{name}: bootstrap host {host} is not a compose service"
        kafka_env = environment(services[host])
        assert f"PLAINTEXT://{host}:{port}" in kafka_env["KAFKA_ADVERTISED_LISTENERS"]
        registry_host = settings.schema_registry_url.split("//", 1)[1].split(":")[0]
        assert registry_host in services, name
        pg = environment(services["postgres"])
        admin = (
            f"postgresql://{pg['POSTGRES_USER']}:{pg['POSTGRES_PASSWORD']}@postgres:5432/{pg['POSTGRES_DB']}"
        )
        # Only `init` (sharebus db init) holds the administrator's DSN; workers their roles' own.
        assert (settings.postgres_dsn == admin) == (name == "init"), name
        own = {"enforcer": ("enforcer", "rights"), "linker": ("linker",), "agents": ("audit", "views")}
        for role in own.get(name, ()):
            assert settings.pg_dsn(role).startswith(f"postgresql://sharingbus_{role}:<PG_"), (name, role)
        assert settings.web_host == "0.0.0.0", "the web server must listen beyond loopback in a container"
        for key in env:
            monkeypatch.delenv(key)


def test_long_running_services_have_healthchecks(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        if one_shot(service):
            assert "healthcheck" not in service, f"{name} is one-shot: depend on its completion instead"
            continue
        assert service["healthcheck"]["test"], name
        assert service.get("restart") == "unless-stopped", name


def test_depends_on_waits_for_health_or_completion(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        depends = service.get("depends_on", {})
        assert isinstance(depends, dict), f"{name}: use the long depends_on form with a condition"
        for dependency, spec in depends.items():
            assert dependency in services, f"{name} depends on unknown {dependency}"
            expected = (
                "service_completed_successfully" if one_shot(services[dependency]) else "service_healthy"
            )
            assert spec == {"condition": expected}, f"{name} -> {dependency}"
    for worker in ("enforcer", "linker", "agents"):
        assert {"kafka", "schema-registry", "postgres", "init"} <= set(services[worker]["depends_on"])


def test_specific_healthchecks(services: dict[str, dict[str, Any]]) -> None:
    assert "kafka-broker-api-versions" in healthcheck_text(services["kafka"])
    assert "/subjects" in healthcheck_text(services["schema-registry"])
    assert "pg_isready" in healthcheck_text(services["postgres"])
    port = environment(services["agents"])["SHARINGBUS_WEB_PORT"]
    assert f":{port}/health" in healthcheck_text(services["agents"])


def test_kafka_runs_kraft_without_auto_created_topics(services: dict[str, dict[str, Any]]) -> None:
    kafka = services["kafka"]
    env = environment(kafka)
    assert kafka["image"].startswith("apache/kafka:")
    assert "controller" in env["KAFKA_PROCESS_ROLES"] and "broker" in env["KAFKA_PROCESS_ROLES"]
    assert not any("zookeeper" in name for name in services)
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"


def test_registry_is_confluent_compatible(services: dict[str, dict[str, Any]]) -> None:
    image = services["schema-registry"]["image"]
    assert image.startswith(("confluentinc/cp-schema-registry:", "ghcr.io/aiven-open/karapace"))


def test_agents_are_scalable_workers(services: dict[str, dict[str, Any]]) -> None:
    roles: list[str] = []
    for name in ("enforcer", "linker", "agents"):
        agents = services[name]
        assert agents["build"]["dockerfile"] == "deploy/Dockerfile"
        assert (ROOT / agents["build"]["context"] / agents["build"]["dockerfile"]).is_file()
        argv = shlex.split(command(agents))
        assert argv[:3] == ["sharebus", "worker", "--roles"], name
        roles += Settings(roles=argv[3]).roles.split(",")
        assert "container_name" not in agents and "ports" not in agents, "fixed names/ports prevent --scale"
        assert agents["deploy"]["replicas"] >= 2
    assert sorted(roles) == sorted(ROLES), "every role runs in exactly one service"
    assert "sharebus schemas register" in command(services["init"])


def test_prometheus_scrapes_the_agents_metrics_port(services: dict[str, dict[str, Any]]) -> None:
    prometheus = services["prometheus"]
    config_flag = next(a for a in prometheus["command"] if a.startswith("--config.file="))
    config_path = Path(config_flag.split("=", 1)[1])
    mounts = dict(v.split(":")[:2][::-1] for v in prometheus["volumes"] if v.startswith("./"))
    host_dir = mounts[str(config_path.parent)]
    config = yaml.safe_load((ROOT / host_dir / config_path.name).read_text())
    job = next(j for j in config["scrape_configs"] if j["job_name"] == "sharingbus-workers")
    port = int(environment(services["agents"])["SHARINGBUS_METRICS_PORT"])
    assert environment(services["enforcer"])["SHARINGBUS_METRICS_PORT"] == str(port)
    targets = [(name, sd["port"]) for sd in job.get("dns_sd_configs", []) for name in sd["names"]]
    targets += [
        (t.rsplit(":", 1)[0], int(t.rsplit(":", 1)[1]))
        for sc in job.get("static_configs", [])
        for t in sc["targets"]
    ]
    assert sorted(targets) == [("agents", port), ("enforcer", port), ("linker", port)], targets
    for name in ("agents", "enforcer", "linker"):
        assert str(port) in [str(p) for p in services[name].get("expose", [])]


def test_grafana_mounts_match_provisioning(services: dict[str, dict[str, Any]]) -> None:
    grafana = services["grafana"]
    mounts = dict(v.split(":")[:2][::-1] for v in grafana["volumes"] if v.startswith("./"))
    provisioning = ROOT / mounts["/etc/grafana/provisioning"]
    providers = yaml.safe_load((provisioning / "dashboards" / "dashboards.yml").read_text())
    dashboards_dir = providers["providers"][0]["options"]["path"]
    assert (ROOT / mounts[dashboards_dir] / "sharingbus.json").is_file()
    home = environment(grafana)["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home.startswith(dashboards_dir) and (ROOT / mounts[dashboards_dir] / Path(home).name).is_file()
    datasources = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())
    url = datasources["datasources"][0]["url"]
    assert url.split("//", 1)[1].split(":")[0] in services
    assert grafana["depends_on"] == {"prometheus": {"condition": "service_healthy"}}


def test_key_ring_reaches_only_the_enforcer_read_only(services: dict[str, dict[str, Any]]) -> None:
    """The enforcer tokenises; the linker and agents services (audit sink, views, API) hold no master."""
    keyring_dir = str(Path(environment(services["enforcer"])["SHARINGBUS_KEYRING_PATH"]).parent)
    assert f"keyring:{keyring_dir}:ro" in services["enforcer"]["volumes"]
    assert f"keyring:{keyring_dir}" in services["init"]["volumes"]
    holders = {name for name, svc in services.items() if any("keyring" in v for v in svc.get("volumes", []))}
    assert holders == {"init", "enforcer"}


def test_view_keys_reach_only_the_linker_read_only(services: dict[str, dict[str, Any]]) -> None:
    """The linker makes each recipient's person tokens from derived view keys (never the master);
    the views and API hold none. Without them a linker feeds no person view at all."""
    path = Path(environment(services["linker"])["SHARINGBUS_VIEW_KEYS_PATH"])
    assert f"view-keys:{path.parent}:ro" in services["linker"]["volumes"]
    assert f"view-keys:{path.parent}" in services["init"]["volumes"]
    assert f"sharebus keys derive-views --out {path}" in command(services["init"])
    holders = {n for n, svc in services.items() if any("view-keys" in v for v in svc.get("volumes", []))}
    assert holders == {"init", "linker"}
    assert all(
        "SHARINGBUS_VIEW_KEYS_PATH" not in environment(svc) for n, svc in services.items() if n != "linker"
    )


def test_postgres_has_no_default_password_nor_public_port(services: dict[str, dict[str, Any]]) -> None:
    text = COMPOSE_FILE.read_text()
    assert not re.search(r"POSTGRES_PASSWORD:-", text), "the database administrator's default password"
    assert environment(services["postgres"])["POSTGRES_PASSWORD"] == "<POSTGRES_PASSWORD>"
    assert all(str(p).startswith("127.0.0.1:") for p in services["postgres"]["ports"])
    assert not re.search(r"\$\{PG_\w+:-", text), "a database role with a default password"
