"""What the web views read: a small protocol, so the handlers never touch Faust tables directly.

The worker's implementation reads its Faust tables; tests use `MemoryViewsReader`. Methods are
called on the event loop, so an implementation must answer from memory (a database-backed reader
refreshes a cache in the background). Every table it returns is already published, i.e. passed
through `streams.privacy.disclosure.suppress`: the web layer never sees a raw count.
"""

from __future__ import annotations

from typing import Any, Protocol


class ViewsReader(Protocol):
    def person(self, token: str, recipient: str | None) -> dict[str, Any] | None:
        """`Profile.summary()` of a person token in `recipient`'s own view, or None (no such token,
        or another recipient's: `Profile.visible_to`)."""

    def areas(self, week: str | None) -> dict[str, Any]:
        """`SuppressedTable.to_dict()` of a week (None: the latest) plus "week" and "weeks"."""

    def factors(self) -> list[dict[str, Any]]:
        """The factor catalogue: name, kind (R/P), domain, label, description, weight."""

    def top_cohort(self, n: int, recipient: str | None) -> list[dict[str, Any]]:
        """The n highest-scored profiles of `recipient`'s own view: person_token, score, explanation."""

    def health(self, recipient: str | None) -> dict[str, Any]:
        """Pipeline health for the dashboard: at least "status"; anything else is shown as is.
        "profiles" counts `recipient`'s own view only (another view's size is not the caller's)."""

    def trend(self, factor: str) -> list[tuple[str, int | None]]:
        """(week, published weekly total) of one factor, oldest first; None where suppressed."""
