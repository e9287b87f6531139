"""Enforcement: the pure engine that applies compiled plans, the audit ledger and the link facts it emits."""
