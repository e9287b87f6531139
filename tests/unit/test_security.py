"""Every security setting reaches both librdkafka's config and Faust's credentials (and aiokafka's)."""

from __future__ import annotations

import datetime as dt
import ipaddress
import socket
import ssl
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import KafkaException, Producer
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from faust.auth import SASLCredentials, SSLCredentials
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

from streams.errors import ConfigurationError
from streams.kafka.security import check_security, faust_credentials
from streams.settings import Settings

KEY_PASSWORD = "key-secret"


@dataclass(frozen=True)
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path  # encrypted with KEY_PASSWORD


def _cert(
    name: str, key: ec.EllipticCurvePrivateKey, issuer: tuple[x509.Name, ec.EllipticCurvePrivateKey] | None
) -> x509.Certificate:
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    issuer_name, issuer_key = issuer or (subject, key)
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None), critical=True)
    )
    if name == "localhost":
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
    return builder.sign(issuer_key, hashes.SHA256())


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey, password: str | None = None) -> Path:
    encryption = (
        serialization.BestAvailableEncryption(password.encode()) if password else serialization.NoEncryption()
    )
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
    )
    return path


def _write_cert(path: Path, cert: x509.Certificate) -> Path:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    d = tmp_path_factory.mktemp("pki")
    ca_key, server_key, client_key = (ec.generate_private_key(ec.SECP256R1()) for _ in range(3))
    ca = _cert("test-ca", ca_key, None)
    issuer = (ca.subject, ca_key)
    return Pki(
        ca=_write_cert(d / "ca.pem", ca),
        server_cert=_write_cert(d / "server.pem", _cert("localhost", server_key, issuer)),
        server_key=_write_key(d / "server.key", server_key),
        client_cert=_write_cert(d / "client.pem", _cert("partner.thames_valley_police", client_key, issuer)),
        client_key=_write_key(d / "client.key", client_key, KEY_PASSWORD),
    )


def _mtls_settings(pki: Pki, protocol: str = "SASL_SSL", **extra: object) -> Settings:
    values: dict[str, object] = {
        "bootstrap_servers": "broker.example:9093",
        "security_protocol": protocol,
        "ssl_cafile": pki.ca,
        "ssl_certfile": pki.client_cert,
        "ssl_keyfile": pki.client_key,
        "ssl_key_password": KEY_PASSWORD,
    }
    return Settings(**{**values, **extra})  # type: ignore[arg-type]


def _handshake(pki: Pki, client: ssl.SSLContext) -> str:
    """TLS handshake against a server that requires a client certificate; returns the client's CN."""
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(pki.server_cert, pki.server_key)
    server.load_verify_locations(pki.ca)
    server.verify_mode = ssl.CERT_REQUIRED
    seen: list[str] = []
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]

        def serve() -> None:
            conn, _ = listener.accept()
            with server.wrap_socket(conn, server_side=True) as tls:
                subject: Any = (tls.getpeercert() or {}).get("subject", ())
                seen.extend(value for rdn in subject for key, value in rdn if key == "commonName")
                tls.sendall(b"ok")

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        with (
            socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
            client.wrap_socket(raw, server_hostname="localhost") as tls,
        ):
            assert tls.recv(2) == b"ok"
        thread.join(5)
    return seen[0]


def test_sasl_ssl_with_mtls_reaches_librdkafka_faust_and_aiokafka(pki: Pki) -> None:
    settings = _mtls_settings(
        pki, sasl_mechanism="SCRAM-SHA-512", sasl_username="tvp", sasl_password="sasl-secret"
    )
    conf = settings.kafka_config()
    assert conf == {
        "bootstrap.servers": "broker.example:9093",
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "tvp",
        "sasl.password": "sasl-secret",
        "ssl.ca.location": str(pki.ca),
        "ssl.certificate.location": str(pki.client_cert),
        "ssl.key.location": str(pki.client_key),
        "ssl.key.password": KEY_PASSWORD,
    }
    Producer(conf)  # librdkafka loads the CA, certificate and encrypted key at creation
    creds = faust_credentials(settings)
    assert isinstance(creds, SASLCredentials)
    auth = credentials_to_aiokafka_auth(creds)
    assert auth["security_protocol"] == "SASL_SSL"
    assert auth["sasl_mechanism"] == "SCRAM-SHA-512"
    assert (auth["sasl_plain_username"], auth["sasl_plain_password"]) == ("tvp", "sasl-secret")
    assert _handshake(pki, auth["ssl_context"]) == "partner.thames_valley_police"
    assert "sasl-secret" not in repr(creds)


def test_wrong_key_password_fails_in_both_clients(pki: Pki) -> None:
    settings = _mtls_settings(pki, protocol="SSL", ssl_key_password="wrong")
    with pytest.raises(KafkaException):
        Producer(settings.kafka_config())
    with pytest.raises(ssl.SSLError):
        faust_credentials(settings)


def test_mtls_without_sasl_gives_ssl_credentials(pki: Pki) -> None:
    settings = _mtls_settings(pki, protocol="SSL")
    assert settings.kafka_config()["security.protocol"] == "SSL"
    creds = faust_credentials(settings)
    assert isinstance(creds, SSLCredentials)
    auth = credentials_to_aiokafka_auth(creds)
    assert auth["security_protocol"] == "SSL"
    assert _handshake(pki, auth["ssl_context"]) == "partner.thames_valley_police"


def test_event_hubs_style_sasl_plain_over_tls_without_client_cert() -> None:
    settings = Settings(
        bootstrap_servers="ns.servicebus.windows.net:9093",
        security_protocol="SASL_SSL",
        sasl_mechanism="PLAIN",
        sasl_username="$ConnectionString",
        sasl_password="Endpoint=sb://ns/;SharedAccessKeyName=k;SharedAccessKey=s",  # type: ignore[arg-type]
    )
    auth = credentials_to_aiokafka_auth(faust_credentials(settings))
    assert auth["security_protocol"] == "SASL_SSL" and auth["sasl_mechanism"] == "PLAIN"
    assert auth["sasl_plain_username"] == "$ConnectionString"
    context = auth["ssl_context"]
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname


def test_sasl_plaintext_has_no_tls_context() -> None:
    settings = Settings(
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism="SCRAM-SHA-256",
        sasl_username="u",
        sasl_password="p",  # type: ignore[arg-type]
    )
    auth = credentials_to_aiokafka_auth(faust_credentials(settings))
    assert auth["security_protocol"] == "SASL_PLAINTEXT" and auth["ssl_context"] is None
    assert settings.kafka_config()["security.protocol"] == "SASL_PLAINTEXT"


def test_plaintext_has_no_credentials() -> None:
    assert faust_credentials(Settings()) is None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"security_protocol": "SASL_SSL", "sasl_username": "u", "sasl_password": "p"}, "SASL_MECHANISM"),
        (
            {"security_protocol": "SASL_SSL", "sasl_mechanism": "PLAIN"},
            "SASL_USERNAME, SHARINGBUS_SASL_PASSWORD",
        ),
        ({"sasl_username": "u"}, "SASL settings are set but security_protocol is PLAINTEXT"),
        ({"ssl_cafile": "/etc/hosts"}, "TLS settings are set but security_protocol is PLAINTEXT"),
        ({"security_protocol": "SSL", "ssl_certfile": "/etc/hosts"}, "both SHARINGBUS_SSL_CERTFILE"),
        (
            {"security_protocol": "SSL", "ssl_cafile": "/nonexistent/ca.pem"},
            "SHARINGBUS_SSL_CAFILE: no such file",
        ),
    ],
)
def test_incomplete_or_unused_settings_fail_at_start(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        check_security(Settings(**kwargs))  # type: ignore[arg-type]
