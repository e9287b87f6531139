"""The embedded Confluent-compatible schema registry (see DESIGN.md, "Schema registry").

Clients use confluent-kafka's own `SchemaRegistryClient` and serializers against it, so a real
Confluent Schema Registry (or Karapace, Apicurio's ccompat API) can replace it by URL alone.
"""

from streams.registry.compat import CompatibilityLevel, Incompatibility, check_compatibility, check_resolution
from streams.registry.embedded import EmbeddedRegistry

__all__ = [
    "CompatibilityLevel",
    "EmbeddedRegistry",
    "Incompatibility",
    "check_compatibility",
    "check_resolution",
]
