"""Sharing Bus: the bus library (settings, topics, schemas, agreements, operators, clients)."""

__version__ = "0.1.0"
