"""Reading the bus's YAML files (partners, factors, extract mappings) with one clear error line.

A file that cannot be read or parsed is a ConfigurationError naming the file, raised at start, so
no caller needs its own handling of I/O and YAML errors.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from streams.errors import ConfigurationError

__all__ = ["read_yaml"]


def read_yaml(path: Path, what: str = "") -> Any:
    """The parsed document in `path` (UTF-8); `what` names it in the error ("cannot read mapping")."""
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigurationError(
            f"{path}: cannot read{' ' + what if what else ''} ({exc.strerror})"
        ) from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"{path}: invalid YAML: {exc}") from None
