"""Data subject rights (DPO controls 10 and 11): rectification, erasure, restriction, retention,
subject access.

Requests are events (`bus.subject_request`) a controller publishes about its own events; the
enforcer leaves them to their own stage (`streams.rights.stage`), which hands them to
`SubjectRightsService` (built here from settings); it reaches every recipient through the audit
ledger. `docs/subject-rights.md` has the whole design.
"""

from __future__ import annotations

from streams.avro.catalogue import Catalogue
from streams.privacy.keys import KeyRing
from streams.rights.model import KINDS, REQUEST_EVENT_TYPE, RequestRefused, SubjectRequest, parse_request
from streams.rights.service import SubjectRightsService
from streams.settings import Settings

__all__ = [
    "KINDS",
    "REQUEST_EVENT_TYPE",
    "RequestRefused",
    "SubjectRequest",
    "SubjectRightsService",
    "build_rights",
    "linkage_key_id",
    "parse_request",
]


def linkage_key_id(settings: Settings, keyring: KeyRing) -> str:
    """The key linkage tokens are made with: the same pin `streams.enforce.link_facts` uses."""
    return settings.linkage_key_id or keyring.ids[0]


def build_rights(settings: Settings, catalogue: Catalogue, keyring: KeyRing) -> SubjectRightsService:
    """Everything the service needs, from settings; creates its tables (fails at start, not per event)."""
    from streams.avro.serde import SchemaCache
    from streams.enforce.audit_store import AuditStore
    from streams.enforce.link_facts import make_link_facts
    from streams.linkage.view_tokens import ViewTokens
    from streams.pg import ensure_database
    from streams.privacy.vault import Vault
    from streams.registry.client import registry_client
    from streams.rights.context import Context
    from streams.rights.links import LinkIndex
    from streams.rights.raw import RawReader
    from streams.rights.restrictions import Restrictions
    from streams.rights.store import RightsStore

    dsn = settings.pg_dsn("rights")
    ensure_database(dsn, settings.pg_dsn_setting("rights"))
    store = RightsStore(dsn)
    vault = Vault(dsn)
    schemas = SchemaCache(registry_client(settings))
    ctx = Context(
        catalogue=catalogue,
        keyring=keyring,
        linkage_kid=linkage_key_id(settings, keyring),
        store=store,
        ledger=AuditStore(dsn),
        links=LinkIndex(dsn),
        vault=vault,
        raw=RawReader(settings.kafka_config(), schemas, catalogue),
        schemas=schemas,
        restrictions=Restrictions(store.restrictions, store.restrictions_version),
        link_facts=make_link_facts(settings, catalogue, keyring),
        view_tokens=ViewTokens(keyring, linkage_key_id(settings, keyring)),
    )
    return SubjectRightsService(ctx)
