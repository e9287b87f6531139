"""Read an agreements directory: YAML -> models -> checks, every problem named by file and key.

Each agreement file stands on its own, so one bad file never decides what the others share:
- a file with errors is not applied; given the `previous` set, the version last loaded from that
  file stays in force (if it still holds against today's recipients and the other agreements),
  otherwise nothing is shared under it (fail closed). A broken `recipients.yaml` likewise keeps
  the previous recipients;
- a file that is gone is gone: removing a file, a recipient or an event type applies at once;
- an agreement past its review date or expiry is `lapsed`: kept apart from the enforced ones (its
  plans deny and audit every event with the reason) and reported, without touching the others.

`check_agreements` returns the set and every problem (for `sharebus agreements check` and the
watcher); `load_agreements` refuses the whole directory when any error remains, for commands that
need every agreement understood (explain, retention, subject access).
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
from streams.agreements.checks import check_agreement, lapse, select_for
from streams.agreements.domains import one_recipient_per_domain
from streams.agreements.model import Agreement, Recipient, RecipientsFile
from streams.agreements.schema import agreement_schema
from streams.avro.catalogue import Catalogue
from streams.errors import ConfigurationError

__all__ = [
    "AgreementSet",
    "Issue",
    "Lapsed",
    "agreement_files",
    "check_agreements",
    "directory_digest",
    "load_agreements",
    "refuse_start",
]

RECIPIENTS_FILE = "recipients.yaml"


@dataclass(frozen=True)
class Issue:
    """One problem: `<file>: <key>: <message>`."""

    file: Path
    key: str
    message: str
    severity: Literal["error", "warning"] = "error"
    lapse: bool = False  # the agreement is valid but past its review date or expiry

    def __str__(self) -> str:
        where = f"{self.file}: {self.key}" if self.key else str(self.file)
        prefix = "warning: " if self.severity == "warning" else ""
        return f"{where}: {prefix}{self.message}"


@dataclass(frozen=True)
class Lapsed:
    """An otherwise valid agreement that may not be enforced today, and why."""

    agreement: Agreement
    reason: str


@dataclass(frozen=True)
class AgreementSet:
    """The agreements enforced from one directory, the recipients, and a hash of the directory's
    files. `lapsed` ones are valid but past their review date or expiry: never enforced."""

    directory: Path
    agreements: tuple[Agreement, ...]
    recipients: Mapping[str, Recipient]
    version: str
    warnings: tuple[Issue, ...] = field(default=())
    lapsed: tuple[Lapsed, ...] = field(default=())

    def from_file(self, path: Path) -> Agreement | None:
        """The agreement (enforced or lapsed) loaded from `path`, if any."""
        every = (*self.agreements, *(x.agreement for x in self.lapsed))
        return next((a for a in every if a.file == path), None)


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
    """The agreements of `directory`; ConfigurationError naming every file and key at fault. Lapsed
    agreements are no fault of the file: they come back in `lapsed` (retention and subject access
    still need them; the compiler makes them deny)."""
    agreements, issues = check_agreements(directory, catalogue, today=today)
    errors = [i for i in issues if i.severity == "error" and not i.lapse]
    if errors:
        raise ConfigurationError("invalid agreements:\n" + "\n".join(f"  {e}" for e in errors))
    return agreements


def check_agreements(
    directory: Path | str,
    catalogue: Catalogue,
    *,
    today: date | None = None,
    previous: AgreementSet | None = None,
) -> tuple[AgreementSet, list[Issue]]:
    """Every problem in `directory`, and the set of agreements that stand (see the module docstring;
    without `previous`, a file with errors shares nothing). A lapse is reported as an error."""
    directory = Path(directory)
    if not directory.is_dir():
        raise ConfigurationError(f"agreements directory {directory} does not exist")
    today = today or date.today()
    issues: list[Issue] = []
    recipients = _load_recipients(directory / RECIPIENTS_FILE, issues)
    if previous is not None and any(i.file.name == RECIPIENTS_FILE for i in issues):
        recipients = dict(previous.recipients)
        message = "not applied: the recipients last loaded stay in force until it is fixed"
        issues.append(Issue(directory / RECIPIENTS_FILE, "", message, "warning"))
    seen = _Seen(catalogue, recipients)
    valid: list[Agreement] = []
    lapsed: list[Lapsed] = []
    for path in agreement_files(directory):
        agreement = _parse(path, issues)
        if agreement is not None:
            found = seen.judge(agreement, today)
            issues += found
            if any(i.severity == "error" for i in found):
                agreement = None
        if agreement is None:
            agreement = _fallback(path, previous, seen, today, issues)
        if agreement is None:
            continue
        seen.add(agreement)
        lapsed_because = lapse(agreement, today)
        if lapsed_because is None:
            valid.append(agreement)
        else:
            lapsed.append(Lapsed(agreement, lapsed_because[1]))
            issues.append(Issue(path, lapsed_because[0], lapsed_because[1], lapse=True))
    valid, refused = one_recipient_per_domain(
        valid, recipients, lambda a: previous.from_file(a.file) if previous is not None else None
    )
    for a, f in refused:
        issues.append(Issue(a.file, f.key, f.message, "warning" if f.severity == "warning" else "error"))
    result = AgreementSet(
        directory=directory,
        agreements=tuple(valid),
        recipients=recipients,
        version=directory_digest(directory)[:16],
        warnings=tuple(i for i in issues if i.severity == "warning"),
        lapsed=tuple(lapsed),
    )
    return result, issues


def refuse_start(issues: list[Issue]) -> None:
    """ConfigurationError when nothing can be judged: `recipients.yaml` missing or broken. Any other
    problem stops only its own agreement, so it never keeps a worker from starting."""
    fatal = [str(i) for i in issues if i.file.name == RECIPIENTS_FILE and i.severity == "error"]
    if fatal:
        raise ConfigurationError("invalid agreements:\n" + "\n".join(f"  {e}" for e in fatal))


def _fallback(
    path: Path, previous: AgreementSet | None, seen: _Seen, today: date, issues: list[Issue]
) -> Agreement | None:
    """The version last loaded from `path` when it still holds, else None (nothing shared under it)."""
    old = previous.from_file(path) if previous is not None else None
    if old is None:
        return None
    if any(i.severity == "error" for i in seen.judge(old, today)):
        message = (
            f"not applied, and {old.id} v{old.version} as last loaded no longer holds: nothing is shared"
        )
        issues.append(Issue(path, "", message))
        return None
    message = f"not applied: {old.id} v{old.version} as last loaded stays in force until it is fixed"
    issues.append(Issue(path, "", message, "warning"))
    return old


class _Seen:
    """What the agreements accepted so far claim, so a later file cannot contradict them: ids,
    (recipient, event type, owner) coverage, and the output schema of each shared topic."""

    def __init__(self, catalogue: Catalogue, recipients: Mapping[str, Recipient]) -> None:
        self.catalogue = catalogue
        self.recipients = recipients
        self.ids: dict[str, Path] = {}
        self.covered: dict[tuple[str, str, str], Agreement] = {}
        self.schemas: dict[tuple[str, str], tuple[Agreement, dict[str, Any]]] = {}

    def judge(self, agreement: Agreement, today: date) -> list[Issue]:
        """Every problem of `agreement` on its own and against those accepted (nothing recorded)."""
        path = agreement.file
        findings = check_agreement(agreement, self.recipients, self.catalogue, today)
        found = [
            Issue(path, f.key, f.message, "warning" if f.severity == "warning" else "error") for f in findings
        ]
        if agreement.id in self.ids:
            message = f"agreement id {agreement.id} is also used by {self.ids[agreement.id]}"
            found.append(Issue(path, "id", message))
        found += [Issue(path, key, message) for key, message in self._overlaps(agreement)]
        if not any(i.severity == "error" for i in found):
            found += [Issue(path, key, message) for key, message in self._topic_clashes(agreement)]
        return found

    def add(self, agreement: Agreement) -> None:
        self.ids.setdefault(agreement.id, agreement.file)
        for key in self._keys(agreement):
            self.covered.setdefault(key, agreement)
        for et_name, schema in self._schemas(agreement):
            self.schemas.setdefault((agreement.recipient, et_name), (agreement, schema))

    def _keys(self, agreement: Agreement) -> list[tuple[str, str, str]]:
        partner_events = {o: p.event_types for o, p in self.catalogue.partners.items()}
        return [
            (agreement.recipient, et_name, owner)
            for et_name in agreement.event_types
            for owner in agreement.owners
            if et_name in partner_events.get(owner, frozenset())
        ]

    def _overlaps(self, agreement: Agreement) -> list[tuple[str, str]]:
        """Two agreements for the same (recipient, event type, owner) would make the outcome ambiguous."""
        found = []
        for key in self._keys(agreement):
            other = self.covered.get(key)
            if other is not None:
                recipient, et_name, owner = key
                message = (
                    f"{et_name} from {owner} to {recipient} is already covered by {other.id} ({other.file})"
                )
                found.append((f"event_types.{et_name}", message))
        return found

    def _schemas(self, agreement: Agreement) -> list[tuple[str, dict[str, Any]]]:
        tier = self.recipients[agreement.recipient].tier
        out = []
        for et_name in agreement.event_types:
            tree, selection = select_for(agreement, et_name, self.catalogue, tier)
            event_type = self.catalogue.event_types[et_name]
            out.append((et_name, agreement_schema(agreement, event_type, tree, selection.rules)))
        return out

    def _topic_clashes(self, agreement: Agreement) -> list[tuple[str, str]]:
        """Agreements feeding one shared topic (same recipient and event type, other owners) must give
        the same output schema: a topic has one registry subject, and its readers one shape."""
        found = []
        for et_name, schema in self._schemas(agreement):
            first = self.schemas.get((agreement.recipient, et_name))
            if first is not None and first[1] != schema:
                message = (
                    f"{topics.shared(agreement.recipient, et_name)} is also fed by {first[0].id} "
                    f"({first[0].file}) with a different output: give both the same fields, treatments "
                    "and on_invalid_identifier"
                )
                found.append((f"event_types.{et_name}", message))
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
