"""deploy/: alert rules, scrape config, Grafana dashboard and provisioning, Dockerfile, production env.

Every metric named in PromQL must exist in streams/metrics.py. With promtool installed (Debian
package `prometheus`) the files are also checked and the alert unit tests run by promtool itself;
without it the same tests fall back to structural checks. They never skip.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from streams import metrics
from streams.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
PROMETHEUS = DEPLOY / "prometheus"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "sharingbus.json"
PROMTOOL = shutil.which("promtool")

BUILTIN_SERIES = {"up"}  # written by Prometheus itself for every target
PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "bool"}
PROMQL_WORDS |= {"offset", "inf", "nan"}
GRAFANA_VARIABLES = {"__rate_interval": "1m", "__interval": "1m", "__range": "1h"}


def metric_names(expr: str) -> set[str]:
    """Series names a PromQL expression selects (label names, functions and keywords excluded)."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'', '""', expr)
    expr = re.sub(r"\{[^}]*\}", " ", expr)  # label matchers
    expr = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", expr)
    expr = re.sub(r"\[[^\]]*\]", " ", expr)  # ranges and subqueries
    names = set()
    for match in re.finditer(r"(?<![\w.$])[a-zA-Z_:][a-zA-Z0-9_:]*", expr):
        if expr[match.end() :].lstrip().startswith("(") or match.group().lower() in PROMQL_WORDS:
            continue
        names.add(match.group())
    return names


def test_metric_names_parser() -> None:
    expr = (
        'histogram_quantile(0.99, sum by (le, event_type) (rate(a_bucket{x="y(z)"}[5m]))) > 6 * 3600 '
        "/ on (partner) group_left sum(b_total offset 5m) and absent(up{job='w'}) or time() - c 1e3"
    )
    assert metric_names(expr) == {"a_bucket", "b_total", "up", "c"}
    with pytest.raises(AssertionError, match="sharingbus_decisions"):
        check_names("test", "rate(sharingbus_decisions[5m])")  # a counter is only exposed with _total


def check_names(where: str, expr: str) -> set[str]:
    known = metrics.sample_names()
    names = metric_names(expr)
    unknown = {n for n in names if n not in known and n not in BUILTIN_SERIES}
    assert not unknown, f"{where}: {sorted(unknown)} not defined in streams/metrics.py (expr: {expr})"
    return {known.get(n, n) for n in names}


def grafana_to_promql(expr: str) -> str:
    """Replace Grafana's $variables so promtool can parse a panel query."""
    return re.sub(r"\$\{?(\w+)\}?", lambda m: GRAFANA_VARIABLES.get(m.group(1), ".*"), expr)


def load_yaml(path: Path) -> Any:
    with path.open() as f:
        return yaml.safe_load(f)


# --- alert rules ----------------------------------------------------------------------------------
def alert_rules() -> list[dict[str, Any]]:
    return [rule for group in load_yaml(PROMETHEUS / "alerts.yml")["groups"] for rule in group["rules"]]


def test_alert_rules_structure() -> None:
    doc = load_yaml(PROMETHEUS / "alerts.yml")
    assert {"groups"} == set(doc)
    names = [rule["alert"] for rule in alert_rules()]
    assert len(names) == len(set(names)), "alert names must be unique"
    for group in doc["groups"]:
        assert group["name"] and group["rules"]
    for rule in alert_rules():
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, rule["alert"]
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}, rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]
        if "for" in rule:
            assert re.fullmatch(r"\d+[smhdw]", rule["for"]), rule["alert"]
        assert _balanced(rule["expr"]), rule["alert"]


def test_alert_metrics_exist_and_cover_the_brief() -> None:
    used: dict[str, set[str]] = {
        rule["alert"]: check_names(rule["alert"], rule["expr"]) for rule in alert_rules()
    }
    everything = set().union(*used.values())
    for family in (
        "sharingbus_dead_letters",
        "sharingbus_consumer_lag",
        "sharingbus_last_event_timestamp_seconds",
        "sharingbus_end_to_end_latency_seconds",
        "sharingbus_registry_requests",
        "up",
    ):
        assert family in everything, f"no alert on {family}"
    latency = next(r for r in alert_rules() if r["alert"] == "SharingBusEndToEndLatencyHigh")
    assert "histogram_quantile(0.99" in latency["expr"]


def _balanced(expr: str) -> bool:
    stack: list[str] = []
    pairs = {")": "(", "]": "[", "}": "{"}
    for ch in re.sub(r'"(?:[^"\\]|\\.)*"', "", expr):
        if ch in "([{":
            stack.append(ch)
        elif ch in pairs and (not stack or stack.pop() != pairs[ch]):
            return False
    return not stack


# --- Prometheus configuration ---------------------------------------------------------------------
def test_prometheus_config_structure() -> None:
    config = load_yaml(PROMETHEUS / "prometheus.yml")
    for rule_file in config["rule_files"]:
        assert (PROMETHEUS / rule_file).is_file(), rule_file
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    workers = jobs["sharingbus-workers"]
    assert workers["metrics_path"] == "/metrics"
    assert workers["dns_sd_configs"][0]["type"] == "A"  # one target per scaled replica
    alert_jobs = {m for r in alert_rules() for m in re.findall(r'job="([^"]+)"', r["expr"])}
    assert alert_jobs <= set(jobs), "alerts refer to a job that is not scraped"


def _run(*args: str) -> str:
    assert PROMTOOL
    proc = subprocess.run([PROMTOOL, *args], capture_output=True, text=True, cwd=PROMETHEUS, timeout=120)
    assert proc.returncode == 0, f"promtool {' '.join(args)}:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def test_promtool_checks_config_and_rules() -> None:
    if not PROMTOOL:  # structural fallback: the YAML parses and every rule names existing series
        load_yaml(PROMETHEUS / "prometheus.yml")
        assert all(check_names(r["alert"], r["expr"]) for r in alert_rules())
        return
    assert "SUCCESS" in _run("check", "config", "prometheus.yml")
    assert "SUCCESS" in _run("check", "rules", "alerts.yml")


def test_alert_unit_tests() -> None:
    """deploy/prometheus/alerts_test.yml: the alerts fire on synthetic series as intended."""
    tests = load_yaml(PROMETHEUS / "alerts_test.yml")
    assert tests["rule_files"] == ["alerts.yml"]
    alerts = {r["alert"] for r in alert_rules()}
    tested = {case["alertname"] for test in tests["tests"] for case in test["alert_rule_test"]}
    assert tested <= alerts
    assert {"SharingBusDeadLetters", "SharingBusPartnerSilent", "SharingBusConsumerLagGrowing"} <= tested
    for test in tests["tests"]:
        for series in test["input_series"]:
            name = series["series"].split("{", 1)[0]
            assert name in metrics.sample_names() or name in BUILTIN_SERIES, name
    if PROMTOOL:
        assert "SUCCESS" in _run("test", "rules", "alerts_test.yml")


# --- Grafana --------------------------------------------------------------------------------------
def dashboard() -> dict[str, Any]:
    return dict(json.loads(DASHBOARD.read_text()))


def panel_queries() -> Iterator[tuple[str, str]]:
    for panel in dashboard()["panels"]:
        for target in panel.get("targets", []):
            yield f"panel {panel['id']} {target['refId']}", target["expr"]


def test_dashboard_structure() -> None:
    dash = dashboard()
    assert dash["uid"] and dash["title"] and dash["schemaVersion"] >= 36
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    cells: set[tuple[int, int]] = set()
    for panel in dash["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24 and grid["h"] > 0, panel["title"]
        area = {
            (x, y)
            for x in range(grid["x"], grid["x"] + grid["w"])
            for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not area & cells, f"panel {panel['title']!r} overlaps another"
        cells |= area
        if panel["type"] == "row":
            continue
        assert panel["type"] in {"timeseries", "stat", "table", "bargauge", "gauge"}, panel["title"]
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        refs = [t["refId"] for t in panel["targets"]]
        assert refs and len(refs) == len(set(refs)), panel["title"]
        assert panel["fieldConfig"]["defaults"]["unit"], panel["title"]
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    provisioned = load_yaml(DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml")
    assert variables["datasource"]["current"]["value"] == provisioned["datasources"][0]["uid"]
    used = {m for _, expr in panel_queries() for m in re.findall(r"\$(\w+)", expr)}
    assert used - set(GRAFANA_VARIABLES) <= set(variables), "a query uses an undefined variable"


def test_dashboard_metrics_exist_and_cover_the_brief() -> None:
    families: set[str] = set()
    for where, expr in panel_queries():
        assert _balanced(expr), where
        families |= check_names(where, grafana_to_promql(expr))
    for variable in dashboard()["templating"]["list"]:
        if variable["type"] == "query":
            selector = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", variable["definition"])
            assert selector, variable["name"]
            families |= check_names(f"variable {variable['name']}", selector.group(1))
    for family in (
        "sharingbus_events_consumed",
        "sharingbus_events_produced",
        "sharingbus_decisions",
        "sharingbus_dead_letters",
        "sharingbus_end_to_end_latency_seconds",
        "sharingbus_consumer_lag",
        "sharingbus_table_entries",
    ):
        assert family in families, f"dashboard has no panel on {family}"
    exprs = [expr for _, expr in panel_queries()]
    assert any("histogram_quantile(0.5," in e for e in exprs) and any(
        "histogram_quantile(0.99," in e for e in exprs
    )


def test_every_metric_is_watched_somewhere() -> None:
    """A metric nobody graphs or alerts on is dead weight: each one appears in deploy/."""
    watched = {f for _, e in panel_queries() for f in check_names("dashboard", grafana_to_promql(e))}
    watched |= {f for r in alert_rules() for f in check_names(r["alert"], r["expr"])}
    unwatched = {m._name for m in metrics.ALL_METRICS} - watched - {"sharingbus_worker_info"}
    assert not unwatched, f"not on the dashboard nor in an alert: {sorted(unwatched)}"


def test_promtool_parses_dashboard_queries(tmp_path: Path) -> None:
    """Dashboard PromQL, with Grafana variables substituted, as recording rules promtool must accept."""
    rules = [
        {"record": f"dashboard:{re.sub(r'[^a-zA-Z0-9_]', '_', where)}", "expr": grafana_to_promql(expr)}
        for where, expr in panel_queries()
    ]
    path = tmp_path / "dashboard_rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    if not PROMTOOL:  # structural fallback
        assert all(_balanced(r["expr"]) and "$" not in r["expr"] for r in rules)
        return
    assert f"SUCCESS: {len(rules)} rules found" in _run("check", "rules", str(path))


def test_grafana_provisioning() -> None:
    datasources = load_yaml(DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml")
    assert datasources["apiVersion"] == 1
    (source,) = datasources["datasources"]
    assert source["type"] == "prometheus" and source["url"] == "http://prometheus:9090"
    providers = load_yaml(DEPLOY / "grafana" / "provisioning" / "dashboards" / "dashboards.yml")
    assert providers["apiVersion"] == 1
    (provider,) = providers["providers"]
    assert provider["type"] == "file" and provider["options"]["path"].startswith("/")


# --- Dockerfile -----------------------------------------------------------------------------------
def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", (DEPLOY / "Dockerfile").read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def test_dockerfile() -> None:
    instructions = dockerfile()
    froms = [args for op, args in instructions if op == "FROM"]
    assert froms and all(f.split()[0] == "python:3.11-slim" for f in froms)
    final = instructions[max(i for i, (op, _) in enumerate(instructions) if op == "FROM") :]
    users = [args for op, args in final if op == "USER"]
    assert users and users[-1] not in {"root", "0"}, "the worker must not run as root"
    assert json.loads(next(args for op, args in final if op == "CMD")) == ["sharebus", "worker"]
    health = next(args for op, args in final if op == "HEALTHCHECK")
    assert "/health" in health
    command = json.loads(health[health.index("CMD") + 3 :])
    assert command[:2] == ["python", "-c"]
    compile(command[2], "HEALTHCHECK", "exec")  # the probe is valid Python
    env = " ".join(args for op, args in final if op == "ENV")
    settings_env = dict(re.findall(r"(SHARINGBUS_\w+)=(\S+)", env))
    fields = {f"SHARINGBUS_{name.upper()}" for name in Settings.model_fields}
    assert set(settings_env) <= fields
    assert [args for op, args in final if op == "EXPOSE"] == [settings_env["SHARINGBUS_WEB_PORT"]]
    assert (DEPLOY / "Dockerfile.dockerignore").is_file()


# --- production settings --------------------------------------------------------------------------
def env_example() -> dict[str, str]:
    pairs = [
        line.split("=", 1)
        for line in (DEPLOY / "production.env.example").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    keys = [k for k, _ in pairs]
    assert len(keys) == len(set(keys)), "a variable is set twice"
    return dict(pairs)  # type: ignore[arg-type]


def test_production_env_names_every_setting() -> None:
    values = env_example()
    fields = {f"SHARINGBUS_{name.upper()}" for name in Settings.model_fields}
    assert set(values) - fields == set(), "unknown settings in deploy/production.env.example"
    assert fields - set(values) == set(), "add the new settings to deploy/production.env.example"


def test_production_env_values_validate(monkeypatch: pytest.MonkeyPatch) -> None:
    """The example values are valid Settings, and describe a secured deployment."""
    for name in list(__import__("os").environ):
        if name.startswith("SHARINGBUS_"):
            monkeypatch.delenv(name)
    for key, value in env_example().items():
        monkeypatch.setenv(key, value)
    settings = Settings()
    assert settings.security_protocol == "SASL_SSL"
    conf = settings.kafka_config()
    assert {"sasl.mechanism", "sasl.username", "sasl.password", "ssl.ca.location"} <= set(conf)
    assert settings.schema_registry_url.startswith("https://")
    assert "sslmode=verify-full" in settings.postgres_dsn
