"""Where the master keys come from: a 0600 file (the embedded default), the environment, or a KMS.

Only the roles that tokenise (the enforcer, the subject-rights service) call `load_keyring`; every
other role runs without key material. A deployment plugs in its own key store (Azure Key Vault, AWS
KMS, HashiCorp Vault) by naming a factory in `SHARINGBUS_KEY_PROVIDER=package.module:factory`; the
factory takes the Settings and returns a `KeyProvider`, whose `load()` fetches the master keys and
hands them straight to `KeyRing.from_secrets`, so they are held nowhere else. Precedence: a provider,
then `SHARINGBUS_KEYS`, then the key-ring file.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

from pydantic import SecretStr

from streams.errors import ConfigurationError
from streams.privacy.keys import KeyRing
from streams.settings import Settings

__all__ = ["EnvKeys", "FileKeys", "KeyProvider", "load_keyring", "provider_for"]


@runtime_checkable
class KeyProvider(Protocol):
    """A source of master keys. `load()` is called once, at start, by a role that tokenises.

    It returns a `KeyRing` (build it with `KeyRing.from_secrets(secrets_by_kid, active)`) and raises
    `ConfigurationError` with one line naming the store, never the key material, when it cannot.
    """

    def load(self) -> KeyRing: ...


@dataclass(frozen=True)
class FileKeys:
    """The JSON key-ring file (`sharebus keys rotate` writes it); refused unless mode 0600."""

    path: Path

    def load(self) -> KeyRing:
        return KeyRing.load(self.path)


@dataclass(frozen=True)
class EnvKeys:
    """`SHARINGBUS_KEYS` ("k1:<base64>,k2:<base64>") and `SHARINGBUS_ACTIVE_KEY`, as Settings read them."""

    spec: SecretStr
    active: str | None = None

    def load(self) -> KeyRing:
        return KeyRing.from_spec(self.spec.get_secret_value(), self.active)


def provider_for(settings: Settings) -> KeyProvider:
    """The configured key source (see the module docstring for the precedence)."""
    if settings.key_provider:
        return _plugged(settings.key_provider, settings)
    if settings.keys is not None and settings.keys.get_secret_value().strip():  # empty: unset
        return EnvKeys(settings.keys, settings.active_key or None)
    return FileKeys(settings.keyring_path)


def load_keyring(settings: Settings) -> KeyRing:
    """The master key ring, for the roles that tokenise only."""
    return provider_for(settings).load()


def _plugged(target: str, settings: Settings) -> KeyProvider:
    module_name, sep, attr = target.partition(":")
    if not sep or not module_name or not attr:
        raise ConfigurationError(f"SHARINGBUS_KEY_PROVIDER must be 'module:factory', not {target!r}")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigurationError(f"SHARINGBUS_KEY_PROVIDER {target!r} cannot be imported: {exc}") from None
    provider = factory(settings) if callable(factory) else None
    if not isinstance(provider, KeyProvider):
        raise ConfigurationError(f"SHARINGBUS_KEY_PROVIDER {target!r} did not return a KeyProvider")
    return provider
