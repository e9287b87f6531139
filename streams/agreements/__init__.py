"""Sharing agreements: YAML files -> checked models -> compiled plans the enforcer runs per event.

`load_agreements` (or `check_agreements` for every problem at once) reads a directory,
`compile_plans` turns it into a `PlanSet`, `PlanWatcher` recompiles when the files change, and
`explain` shows what a recipient would receive for one event, and why.
"""

from __future__ import annotations

from streams.agreements.compiler import Decision, Plan, PlanSet, compile_plans
from streams.agreements.explain import Explanation, explain
from streams.agreements.loader import AgreementSet, Issue, check_agreements, load_agreements
from streams.agreements.model import LAWFUL_BASES, Agreement, Recipient
from streams.agreements.watch import PlanWatcher

__all__ = [
    "LAWFUL_BASES",
    "Agreement",
    "AgreementSet",
    "Decision",
    "Explanation",
    "Issue",
    "Plan",
    "PlanSet",
    "PlanWatcher",
    "Recipient",
    "check_agreements",
    "compile_plans",
    "explain",
    "load_agreements",
]
