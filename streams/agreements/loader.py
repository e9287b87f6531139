"""Read an agreements directory: YAML -> models -> checks, every problem named by file and key.

`check_agreements` collects every problem (for `sharebus agreements check`); `load_agreements`
refuses the whole directory when any error remains, so a worker never starts, or reloads, with an
agreement half understood.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Literal

import pydantic
import yaml

from streams import topics
from streams.agreements.checks import check_agreement, select_for
from streams.agreements.domains import check_domains
from streams.agreements.model import Agreement, Recipient, RecipientsFile
from streams.agreements.schema import agreement_schema
from streams.avro.catalogue import Catalogue
from streams.errors import ConfigurationError

__all__ = [
    "AgreementSet",
    "Issue",
    "agreement_files",
    "check_agreements",
    "directory_digest",
    "load_agreements",
]

RECIPIENTS_FILE = "recipients.yaml"


@dataclass(frozen=True)
class Issue:
    """One problem: `<file>: <key>: <message>`."""

    file: Path
    key: str
    message: str
    severity: Literal["error", "warning"] = "error"

    def __str__(self) -> str:
        where = f"{self.file}: {self.key}" if self.key else str(self.file)
        prefix = "warning: " if self.severity == "warning" else ""
        return f"{where}: {prefix}{self.message}"


@dataclass(frozen=True)
class AgreementSet:
    """The valid agreements of one directory, the recipients, and a hash of the directory's files."""

    directory: Path
    agreements: tuple[Agreement, ...]
    recipients: Mapping[str, Recipient]
    version: str
    warnings: tuple[Issue, ...] = field(default=())


def agreement_files(directory: Path) -> list[Path]:
    """Agreement YAML files of `directory` in name order (hidden and editor files ignored)."""
    return sorted(
        p
        for p in directory.iterdir()
        if p.suffix in (".yaml", ".yml")
        and not p.name.startswith(".")
        and p.name != RECIPIENTS_FILE
        and p.is_file()
    )


def directory_digest(directory: Path) -> str:
    """sha256 over every YAML file's name and bytes: changes exactly when the agreements do."""
    h = hashlib.sha256()
    for p in sorted([*agreement_files(directory), directory / RECIPIENTS_FILE]):
        if p.exists():
            h.update(p.name.encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()


def load_agreements(
    directory: Path | str, catalogue: Catalogue, *, today: date | None = None
) -> AgreementSet:
    """The agreements of `directory`; ConfigurationError naming every file and key at fault."""
    agreements, issues = check_agreements(directory, catalogue, today=today)
    errors = [i for i in issues if i.severity == "error"]
    if errors:
        raise ConfigurationError("invalid agreements:\n" + "\n".join(f"  {e}" for e in errors))
    return agreements


def check_agreements(
    directory: Path | str, catalogue: Catalogue, *, today: date | None = None
) -> tuple[AgreementSet, list[Issue]]:
    """Every problem in `directory`, and the set of agreements that have none."""
    directory = Path(directory)
    if not directory.is_dir():
        raise ConfigurationError(f"agreements directory {directory} does not exist")
    today = today or date.today()
    issues: list[Issue] = []
    recipients = _load_recipients(directory / RECIPIENTS_FILE, issues)
    valid: list[Agreement] = []
    seen_ids: dict[str, Path] = {}
    covered: dict[tuple[str, str, str], Agreement] = {}
    topic_schemas: dict[tuple[str, str], tuple[Agreement, dict[str, Any]]] = {}
    for path in agreement_files(directory):
        agreement = _parse(path, issues)
        if agreement is None:
            continue
        findings = check_agreement(agreement, recipients, catalogue, today)
        found = [
            Issue(path, f.key, f.message, "warning" if f.severity == "warning" else "error") for f in findings
        ]
        if agreement.id in seen_ids:
            found.append(
                Issue(path, "id", f"agreement id {agreement.id} is also used by {seen_ids[agreement.id]}")
            )
        seen_ids.setdefault(agreement.id, path)
        found += _overlaps(agreement, catalogue, covered)
        if not any(i.severity == "error" for i in found):
            found += _topic_clashes(agreement, catalogue, recipients, topic_schemas)
        issues += found
        if not any(i.severity == "error" for i in found):
            valid.append(agreement)
    for agreement, f in check_domains(valid, recipients):
        issues.append(Issue(agreement.file, f.key, f.message))
        valid = [a for a in valid if a is not agreement]
    result = AgreementSet(
        directory=directory,
        agreements=tuple(valid),
        recipients=recipients,
        version=directory_digest(directory)[:16],
        warnings=tuple(i for i in issues if i.severity == "warning"),
    )
    return result, issues


def _overlaps(
    agreement: Agreement, catalogue: Catalogue, covered: dict[tuple[str, str, str], Agreement]
) -> list[Issue]:
    """Two agreements for the same (recipient, event type, owner) would make the outcome ambiguous."""
    found = []
    for et_name in agreement.event_types:
        partner_events = {o: p.event_types for o, p in catalogue.partners.items()}
        for owner in agreement.owners:
            if et_name not in partner_events.get(owner, frozenset()):
                continue
            key = (agreement.recipient, et_name, owner)
            other = covered.setdefault(key, agreement)
            if other is not agreement:
                found.append(
                    Issue(
                        agreement.file,
                        f"event_types.{et_name}",
                        f"{et_name} from {owner} to {agreement.recipient} is already covered "
                        f"by {other.id} ({other.file})",
                    )
                )
    return found


def _topic_clashes(
    agreement: Agreement,
    catalogue: Catalogue,
    recipients: Mapping[str, Recipient],
    seen: dict[tuple[str, str], tuple[Agreement, dict[str, Any]]],
) -> list[Issue]:
    """Agreements feeding one shared topic (same recipient and event type, other owners) must give
    the same output schema: a topic has one registry subject, and its readers one shape."""
    found = []
    for et_name in agreement.event_types:
        tree, selection = select_for(agreement, et_name, catalogue, recipients[agreement.recipient].tier)
        schema = agreement_schema(agreement, catalogue.event_types[et_name], tree, selection.rules)
        first, first_schema = seen.setdefault((agreement.recipient, et_name), (agreement, schema))
        if first is not agreement and first_schema != schema:
            message = (
                f"{topics.shared(agreement.recipient, et_name)} is also fed by {first.id} ({first.file}) "
                "with a different output: give both the same fields, treatments and on_invalid_identifier"
            )
            found.append(Issue(agreement.file, f"event_types.{et_name}", message))
    return found


# --- parsing -------------------------------------------------------------------------------------


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys (YAML would silently keep the last one)."""


def _mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)  # type: ignore[no-untyped-call]
        if key in seen:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


def _read_yaml(path: Path, issues: list[Issue]) -> tuple[Any, bytes]:
    """(document, bytes); the document is None when unreadable (and an issue says why)."""
    try:
        content = path.read_bytes()
    except OSError as exc:
        issues.append(Issue(path, "", f"cannot read ({exc.strerror})"))
        return None, b""
    try:
        return yaml.load(content, Loader=_UniqueKeyLoader), content
    except yaml.MarkedYAMLError as exc:
        line = f"line {exc.problem_mark.line + 1}" if exc.problem_mark else ""
        issues.append(Issue(path, line, f"invalid YAML: {exc.problem}"))
    except yaml.YAMLError as exc:
        issues.append(Issue(path, "", f"invalid YAML: {exc}"))
    return None, content


def _key(loc: tuple[int | str, ...]) -> str:
    """pydantic location -> dotted key with list indices: ("where", 0, "in") -> "where[0].in"."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _message(err: Mapping[str, Any]) -> str:
    kind = err["type"]
    if kind == "missing":
        return "required"
    if kind == "extra_forbidden":
        return "unknown key"
    msg = str(err["msg"]).removeprefix("Value error, ")
    return msg[:1].lower() + msg[1:]


def _validation_issues(path: Path, exc: pydantic.ValidationError) -> list[Issue]:
    return [Issue(path, _key(tuple(e["loc"])), _message(e)) for e in exc.errors()]


def _parse(path: Path, issues: list[Issue]) -> Agreement | None:
    raw, content = _read_yaml(path, issues)
    if raw is None and not any(i.file == path for i in issues):
        issues.append(Issue(path, "", "empty file"))
    if raw is None:
        return None
    if not isinstance(raw, dict):
        issues.append(Issue(path, "", "expected a mapping of agreement keys"))
        return None
    try:
        agreement = Agreement.model_validate(raw)
    except pydantic.ValidationError as exc:
        issues += _validation_issues(path, exc)
        return None
    agreement._file = path
    agreement._digest = hashlib.sha256(content).hexdigest()
    return agreement


def _load_recipients(path: Path, issues: list[Issue]) -> dict[str, Recipient]:
    if not path.exists():
        issues.append(Issue(path, "", "missing: list every recipient (id, name, organisation, tier)"))
        return {}
    raw, _ = _read_yaml(path, issues)
    if raw is None:
        return {}
    try:
        parsed = RecipientsFile.model_validate(raw)
    except pydantic.ValidationError as exc:
        issues += _validation_issues(path, exc)
        return {}
    recipients: dict[str, Recipient] = {}
    principals: dict[str, str] = {}  # one Kafka principal per recipient, or each reads the other's share
    for i, r in enumerate(parsed.recipients):
        if r.id in recipients:
            issues.append(Issue(path, f"recipients[{i}].id", f"recipient {r.id} is listed twice"))
        recipients[r.id] = r
        if r.principal is not None and principals.setdefault(r.principal, r.id) != r.id:
            message = f"{r.principal} is also the principal of {principals[r.principal]}"
            issues.append(Issue(path, f"recipients[{i}].principal", message))
    return recipients
