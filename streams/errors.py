"""One root exception so callers can catch everything the bus raises on purpose."""

from __future__ import annotations


class SharingBusError(Exception):
    """Root of every error raised deliberately by Sharing Bus."""


class ConfigurationError(SharingBusError):
    """Settings, agreements, schemas or keys are wrong; raised at start, never per event."""


class BrokerError(SharingBusError):
    """The Kafka broker could not be started or reached."""


class ValidationError(SharingBusError):
    """An event or row failed validation; `field` and `reason` say where and why."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason
