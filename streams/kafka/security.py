"""Kafka security for Faust/aiokafka, from the same Settings that render the librdkafka config.

`Settings.kafka_config()` covers librdkafka and `Settings.ssl_context()` the TLS context; this module
turns them into Faust's `broker_credentials` and refuses combinations where the two client
libraries would silently disagree: with a SASL protocol and no mechanism, librdkafka falls back to
GSSAPI while Faust assumes PLAIN; TLS files with a plaintext protocol are ignored by one client and
not the other. Checked once at start (`check_security`), never per event.
"""

from __future__ import annotations

from faust.auth import SASLCredentials, SSLCredentials
from faust.types.auth import CredentialsT

from streams.errors import ConfigurationError
from streams.settings import Settings


def check_security(settings: Settings) -> None:
    """ConfigurationError naming the setting when the security settings are incomplete or unused."""
    protocol = settings.security_protocol
    uses_sasl = protocol.startswith("SASL_")
    uses_tls = protocol in ("SSL", "SASL_SSL")
    if uses_sasl:
        missing = [
            name
            for name in ("sasl_mechanism", "sasl_username", "sasl_password")
            if getattr(settings, name) is None
        ]
        if missing:
            raise ConfigurationError(
                f"security_protocol {protocol} needs {', '.join('SHARINGBUS_' + m.upper() for m in missing)}"
            )
    elif settings.sasl_mechanism or settings.sasl_username or settings.sasl_password:
        raise ConfigurationError(f"SASL settings are set but security_protocol is {protocol}")
    tls_files = ("ssl_cafile", "ssl_certfile", "ssl_keyfile", "ssl_key_password")
    if not uses_tls and any(getattr(settings, name) is not None for name in tls_files):
        raise ConfigurationError(f"TLS settings are set but security_protocol is {protocol}")
    if (settings.ssl_certfile is None) != (settings.ssl_keyfile is None):
        raise ConfigurationError("mTLS needs both SHARINGBUS_SSL_CERTFILE and SHARINGBUS_SSL_KEYFILE")
    for name in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
        path = getattr(settings, name)
        if path is not None and not path.is_file():
            raise ConfigurationError(f"SHARINGBUS_{name.upper()}: no such file {path}")


def faust_credentials(settings: Settings) -> CredentialsT | None:
    """Faust `broker_credentials` for the settings (None for PLAINTEXT), after `check_security`."""
    check_security(settings)
    context = settings.ssl_context()
    protocol = settings.security_protocol
    if protocol == "PLAINTEXT":
        return None
    if protocol == "SSL":
        return SSLCredentials(context)
    password = settings.sasl_password.get_secret_value() if settings.sasl_password else None
    # ssl_context is None for SASL_PLAINTEXT, which is how Faust tells the two SASL protocols apart.
    return SASLCredentials(
        username=settings.sasl_username,
        password=password,
        mechanism=settings.sasl_mechanism,
        ssl_context=context,
    )
