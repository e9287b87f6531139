"""Settings for every Sharing Bus process, read from `SHARINGBUS_*` environment variables.

One model renders the client configurations (librdkafka, aiokafka/Faust, schema registry) so that
security settings reach every client and nobody assembles a Kafka config by hand.
"""

from __future__ import annotations

import ssl
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ROOT = Path(__file__).resolve().parent.parent

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]
# What a worker process can run; production deploys each as its own scaled set of workers.
ROLES = ("enforcer", "audit", "linker", "views")


class Settings(BaseSettings):
    """Everything configurable; defaults point at the embedded stack (`sharebus demo`)."""

    model_config = SettingsConfigDict(env_prefix="SHARINGBUS_", extra="forbid", frozen=True)

    bootstrap_servers: str = Field("127.0.0.1:9092", description="Kafka bootstrap servers")
    schema_registry_url: str = Field("http://127.0.0.1:8081", description="Confluent-compatible registry")
    schema_registry_username: str | None = Field(None, description="Registry basic-auth user")
    schema_registry_password: SecretStr | None = Field(None, description="Registry basic-auth password")
    schema_registry_copy_path: Path | None = Field(
        None,
        description="Embedded registry: file keeping its records outside the broker, re-seeding an empty "
        "schemas topic with the same ids (default: data_dir/registry/<topic>.jsonl)",
    )
    postgres_dsn: str = Field("postgresql://127.0.0.1:5432/sharingbus", description="PostgreSQL DSN")
    # One login role per worker role (`sharebus db init`, streams.pg_roles); unset: SHARINGBUS_POSTGRES_DSN.
    postgres_dsn_enforcer: str | None = Field(None, description="DSN of the enforcer's database role")
    postgres_dsn_audit: str | None = Field(None, description="DSN of the audit sink's database role")
    postgres_dsn_linker: str | None = Field(None, description="DSN of the linker's database role")
    postgres_dsn_views: str | None = Field(None, description="DSN of the views sink's database role")
    postgres_dsn_rights: str | None = Field(
        None, description="DSN of the rights service and command line (vault, re-identification)"
    )
    postgres_dsn_analyst: str | None = Field(None, description="DSN of the read-only analysts' role")
    keyring_path: Path = Field(ROOT / "var" / "keyring.json", description="Key ring file (JSON)")
    keys: SecretStr | None = Field(
        None, description='Master keys "k1:<base64>,k2:<base64>" (e.g. injected from a KMS); else the file'
    )
    active_key: str | None = Field(None, description="Active key id of `keys` (default: the last listed)")
    key_provider: str | None = Field(
        None, description="'module:factory' returning a KeyProvider (a KMS or Key Vault client)"
    )
    linkage_key_id: str | None = Field(
        None,
        description="Key id pinned for linkage tokens (default: the first key in the ring)",
    )
    view_keys_path: Path | None = Field(
        None,
        description="Person-view domain keys for a linker without the master (sharebus keys derive-views)",
    )
    agreements_dir: Path = Field(ROOT / "agreements", description="Directory of agreement YAML files")
    record_id_key_path: Path = Field(
        ROOT / "var" / "record-id.key",
        description="Publisher's secret for deriving event ids from record keys (created on first use)",
    )
    schemas_dir: Path = Field(ROOT / "schemas", description="Directory of Avro schemas")
    factors_path: Path = Field(ROOT / "factors.yaml", description="Risk/protective factor catalogue")
    rights_roles_path: Path = Field(
        ROOT / "rights-roles.yaml",
        description="Each partner's data owners (re-identification) and officers (subject access)",
    )

    security_protocol: SecurityProtocol = Field("PLAINTEXT", description="Kafka security protocol")
    sasl_mechanism: SaslMechanism | None = Field(None, description="SASL mechanism")
    sasl_username: str | None = Field(None, description="SASL user name")
    sasl_password: SecretStr | None = Field(None, description="SASL password")
    ssl_cafile: Path | None = Field(None, description="CA bundle for TLS")
    ssl_certfile: Path | None = Field(None, description="Client certificate (mTLS)")
    ssl_keyfile: Path | None = Field(None, description="Client private key (mTLS)")
    ssl_key_password: SecretStr | None = Field(None, description="Password of the client key")

    topic_partitions: int = Field(4, ge=1, description="Partitions for topics the bus creates")
    replication_factor: int = Field(1, ge=1, description="Replication factor for topics the bus creates")
    fetch_max_wait_ms: int = Field(100, ge=1, description="Longest a consumer fetch waits for data (latency)")
    enforcer_fetch_wait_ms: int = Field(
        20,
        ge=1,
        description="Longest the enforcer's fetch waits for data: Tansu checks for it at 1/2, 3/4, ... "
        "of the wait, so a record waits up to about half of it; lower costs the broker CPU "
        "(docs/performance.md)",
    )
    enforcer_commit_interval_ms: int = Field(
        100,
        ge=0,
        description="The enforcer commits settled batches at most this often (each commit costs the "
        "broker CPU; a crash replays at most this long of de-duplicable work)",
    )
    producer_linger_ms: int = Field(
        5,
        ge=0,
        description="How long the enforcer's producer gathers records before sending: lower adds "
        "produce requests, which cost Tansu CPU (1 ms halved the enforcer's throughput here)",
    )
    publish_linger_ms: int = Field(
        2, ge=0, description="How long a partner's Publisher gathers events before sending (latency)"
    )
    stage_log_path: Path | None = Field(
        None, description="Write each enforced batch's stage timestamps here, as JSON lines (benchmarks)"
    )
    consumer_group: str = Field("sharingbus", description="Faust application id / consumer group")
    consumer_session_timeout_ms: int = Field(
        10_000,
        ge=1_000,
        description="Consumer-group session timeout: how long a worker that died keeps its partitions",
    )
    consumer_heartbeat_ms: int = Field(
        1_000, ge=100, description="Consumer-group heartbeat interval (below the session timeout)"
    )
    roles: str = Field(
        ",".join(ROLES),
        description="What this worker runs, comma-separated: enforcer, audit, linker, views (default all)",
    )
    web_host: str = Field("127.0.0.1", description="Worker web server host")
    web_port: int = Field(6066, description="Worker web server port (/metrics /health /ready /api)")
    log_json: bool = Field(False, description="Emit JSON log lines")
    log_level: str = Field("INFO", description="Log level")
    suppression_threshold: int = Field(10, ge=1, description="Small-number suppression threshold")
    round_to: int = Field(5, ge=0, description="Round published counts to this base (0: no rounding)")
    area_publish_lag_hours: float = Field(
        72.0,
        ge=0,
        description="Area counts: hours after an ISO week closes before it is frozen and published",
    )
    area_quiet_seconds: float = Field(
        600.0, ge=0, description="Area counts: a closed week freezes only after this long without a change"
    )
    data_dir: Path = Field(ROOT / "var", description="Worker state (table stores, reports)")
    topic_check_seconds: float = Field(
        10.0,
        ge=0,
        description="How often a worker re-creates any of its topics the broker lacks (0: at start only)",
    )

    # Identity (streams.identity): who is asking, over HTTP and on the command line.
    auth_issuer: str = Field("sharingbus-local", description="Expected `iss` of bearer tokens")
    auth_audience: str = Field("sharingbus", description="Expected `aud` of bearer tokens")
    auth_jwks_url: str | None = Field(
        None, description="JWKS URL of the identity provider (any OIDC issuer); overrides the key file"
    )
    auth_public_key_path: Path | None = Field(
        None, description="PEM file of the issuer's public key(s) (default: the embedded issuer's)"
    )
    auth_local_key_path: Path | None = Field(
        None, description="Embedded issuer's private key, made on first run (default DATA_DIR/identity)"
    )
    auth_algorithms: str = Field(
        "ES256,EdDSA,RS256,PS256", description="Accepted token signature algorithms (asymmetric only)"
    )
    auth_recipient_claim: str = Field("recipient", description="Claim naming the caller's recipient")
    auth_tier_claim: str = Field("tier", description="Claim naming the caller's tier")
    auth_partner_claim: str = Field("partner", description="Claim naming the caller's partner")
    auth_roles_claim: str = Field("roles", description="Claim listing the caller's roles (dotted path)")
    auth_token_ttl_seconds: int = Field(3600, ge=60, le=7 * 86400, description="Lifetime of minted tokens")
    auth_leeway_seconds: int = Field(30, ge=0, le=300, description="Clock skew allowed on exp/nbf/iat")
    allowed_hosts: str = Field(
        "127.0.0.1,localhost,[::1]",
        description="Host header values the web server answers, comma-separated (DNS rebinding)",
    )
    metrics_port: int | None = Field(
        None,
        description="A separate /metrics listener without auth, for a scraper on a private network "
        "(default off: /metrics on the web port needs a token with role ops)",
    )
    identity_token: SecretStr | None = Field(
        None, description="Bearer token the command line presents for its caller"
    )

    @field_validator(
        "auth_jwks_url",
        "auth_public_key_path",
        "auth_local_key_path",
        "identity_token",
        "stage_log_path",
        "postgres_dsn_enforcer",
        "postgres_dsn_audit",
        "postgres_dsn_linker",
        "postgres_dsn_views",
        "postgres_dsn_rights",
        "postgres_dsn_analyst",
        mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        """`NAME=` in an env file means "not set" (a Path("") would be the working directory)."""
        return None if value == "" else value

    @field_validator("roles")
    @classmethod
    def _known_roles(cls, value: str) -> str:
        names = [r.strip() for r in value.split(",") if r.strip()]
        if names == ["all"]:
            names = list(ROLES)
        unknown = sorted(set(names) - set(ROLES))
        if unknown or not names:
            raise ValueError(f"roles must be a comma-separated subset of {', '.join(ROLES)}; got {value!r}")
        return ",".join(r for r in ROLES if r in names)

    @model_validator(mode="after")
    def _heartbeat_within_session(self) -> Settings:
        if self.consumer_heartbeat_ms >= self.consumer_session_timeout_ms:
            raise ValueError("consumer_heartbeat_ms must be below consumer_session_timeout_ms")
        return self

    def pg_dsn(self, role: str) -> str:
        """The DSN a database role connects with (streams.pg_roles.DB_ROLES), else the shared one."""
        dsn = getattr(self, f"postgres_dsn_{role}")
        return str(dsn) if dsn else self.postgres_dsn

    def pg_dsn_setting(self, role: str) -> str:
        """The environment variable `pg_dsn(role)` came from, for error messages."""
        if getattr(self, f"postgres_dsn_{role}"):
            return f"SHARINGBUS_POSTGRES_DSN_{role.upper()}"
        return "SHARINGBUS_POSTGRES_DSN"

    @property
    def role_set(self) -> frozenset[str]:
        return frozenset(self.roles.split(","))

    def kafka_config(self, **extra: Any) -> dict[str, Any]:
        """librdkafka (confluent-kafka) configuration, including security settings."""
        conf: dict[str, Any] = {
            "bootstrap.servers": self.bootstrap_servers,
            "security.protocol": self.security_protocol,
        }
        if self.sasl_mechanism:
            conf["sasl.mechanism"] = self.sasl_mechanism
        if self.sasl_username:
            conf["sasl.username"] = self.sasl_username
        if self.sasl_password:
            conf["sasl.password"] = self.sasl_password.get_secret_value()
        if self.ssl_cafile:
            conf["ssl.ca.location"] = str(self.ssl_cafile)
        if self.ssl_certfile:
            conf["ssl.certificate.location"] = str(self.ssl_certfile)
        if self.ssl_keyfile:
            conf["ssl.key.location"] = str(self.ssl_keyfile)
        if self.ssl_key_password:
            conf["ssl.key.password"] = self.ssl_key_password.get_secret_value()
        conf.update(extra)
        return conf

    def producer_config(self, **extra: Any) -> dict[str, Any]:
        """`kafka_config` for the enforcer's producer, with its latency tuning."""
        return self.kafka_config(**{"linger.ms": self.producer_linger_ms, **extra})

    def ssl_context(self) -> ssl.SSLContext | None:
        """TLS context for aiokafka/Faust, or None for plaintext protocols."""
        if self.security_protocol not in ("SSL", "SASL_SSL"):
            return None
        ctx = ssl.create_default_context(cafile=str(self.ssl_cafile) if self.ssl_cafile else None)
        if self.ssl_certfile:
            ctx.load_cert_chain(
                str(self.ssl_certfile),
                str(self.ssl_keyfile) if self.ssl_keyfile else None,
                self.ssl_key_password.get_secret_value() if self.ssl_key_password else None,
            )
        return ctx

    def to_env(self) -> dict[str, str]:
        """These settings as `SHARINGBUS_*` variables, to hand to a child process."""
        env: dict[str, str] = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, SecretStr):
                value = value.get_secret_value()
            elif isinstance(value, bool):
                value = "true" if value else "false"
            env[f"SHARINGBUS_{name.upper()}"] = str(value)
        return env

    def registry_config(self) -> dict[str, Any]:
        """Configuration for confluent-kafka's `SchemaRegistryClient`."""
        conf: dict[str, Any] = {"url": self.schema_registry_url}
        if self.schema_registry_username and self.schema_registry_password:
            conf["basic.auth.user.info"] = (
                f"{self.schema_registry_username}:{self.schema_registry_password.get_secret_value()}"
            )
        return conf


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Process-wide settings from the environment (cached; tests build `Settings(...)` directly)."""
    return Settings()
