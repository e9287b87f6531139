"""The catalogue of topic names: nobody formats a topic string anywhere else.

Names follow DESIGN.md: partners write `raw.<partner>.<event_type>`, the enforcer writes
`shared.<recipient>.<event_type>`, and bus-internal streams have fixed names.
"""

from __future__ import annotations

import re

SCHEMAS = "_schemas"
AUDIT_DECISIONS = "audit.decisions"
LINK_IDENTIFIERS = "link.identifiers"
LINK_PERSON = "link.person"
LINK_STATE = "link.state"  # the linker's own compacted changelog (clusters), bus-internal
VIEWS_PERSON_PROFILE = "views.person_profile"
VIEWS_AREA_COUNTS = "views.area_counts"

RAW_PATTERN = r"^raw\..+"
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_EVENT_TYPE = re.compile(r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$")


def _check(kind: str, value: str, pattern: re.Pattern[str]) -> str:
    if not pattern.match(value):
        raise ValueError(f"invalid {kind} {value!r}: expected {pattern.pattern}")
    return value


def raw(partner: str, event_type: str) -> str:
    """Topic a partner publishes one event type to (readable only by the enforcer)."""
    return f"raw.{_check('partner', partner, _NAME)}.{_check('event type', event_type, _EVENT_TYPE)}"


def shared(recipient: str, event_type: str) -> str:
    """Topic carrying what one recipient may receive of one event type."""
    return f"shared.{_check('recipient', recipient, _NAME)}.{_check('event type', event_type, _EVENT_TYPE)}"


def dlq(stage: str) -> str:
    """Dead-letter topic of one processing stage (holds raw data: protected like raw topics)."""
    return f"dlq.{_check('stage', stage, _NAME)}"


def parse_raw(topic: str) -> tuple[str, str]:
    """(partner, event_type) of a raw topic; ValueError for anything else."""
    parts = topic.split(".")
    if len(parts) != 4 or parts[0] != "raw":
        raise ValueError(f"not a raw topic: {topic!r}")
    partner, event_type = parts[1], f"{parts[2]}.{parts[3]}"
    raw(partner, event_type)
    return partner, event_type


def value_subject(topic: str) -> str:
    """Schema registry subject under Confluent's TopicNameStrategy."""
    return f"{topic}-value"
