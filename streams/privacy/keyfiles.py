"""Key material on disk: 0600 JSON files written atomically, base64 secrets and key ids checked.

The key ring (`streams.privacy.keys`) and the derived domain keys (`streams.privacy.domain_keys`)
are both stored this way. Errors name the file and the key id, never a secret.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import stat
import tempfile
from pathlib import Path
from typing import Any

from streams.errors import ConfigurationError

__all__ = ["MIN_KEY_BYTES", "check_kid", "decode_secret", "read_private", "write_private"]

_KID_RE = re.compile(r"[A-Za-z0-9_-]{1,32}")  # no "." (the token separator), no ":" / "," (env format)
MIN_KEY_BYTES = 32


def check_kid(kid: Any, where: str) -> str:
    """`kid` if it is a usable key id, else a ConfigurationError naming `where`."""
    if not isinstance(kid, str) or not _KID_RE.fullmatch(kid):
        raise ConfigurationError(f"{where}: key id must be 1-32 of [A-Za-z0-9_-]")
    return kid


def decode_secret(kid: str, text: Any, where: str, min_bytes: int = MIN_KEY_BYTES) -> bytes:
    """base64 (standard or URL-safe) -> bytes; errors name the key id, never the secret."""
    if not isinstance(text, str):
        raise ConfigurationError(f"{where}: key {kid!r}: secret must be a base64 string")
    try:
        raw = base64.b64decode(text.replace("-", "+").replace("_", "/"), validate=True)
    except (binascii.Error, ValueError):
        raise ConfigurationError(f"{where}: key {kid!r}: secret is not valid base64") from None
    if len(raw) < min_bytes:
        raise ConfigurationError(f"{where}: key {kid!r}: secret must be at least {min_bytes} bytes")
    return raw


def read_private(path: Path, what: str, missing: str) -> Any:
    """The JSON document in `path`, refused when group or others may read it.

    `what` names the contents in errors ("key ring"); `missing` says how to make the file.
    """
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            raise ConfigurationError(
                f"{path}: {what} is open to group or others (mode {mode:04o}): run chmod 600 {path}"
            )
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigurationError(f"{path}: {what} file not found ({missing})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"{path}: cannot read {what} ({type(exc).__name__})") from None
    except json.JSONDecodeError as exc:
        raise ConfigurationError(f"{path}: not valid JSON (line {exc.lineno})") from None


def write_private(path: Path, doc: Any) -> None:
    """Write `doc` as JSON atomically with mode 0600 (the file holds secrets): a reader sees the
    old file or the new one, never half of one, and never a moment of wider permissions."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(doc, fh, indent=2)
            fh.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
