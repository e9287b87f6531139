"""Views over HTTP: the JSON API and the live dashboard (see `agents.web.app`)."""

from agents.web.app import make_app, routes
from agents.web.handlers import TIER_HEADER, TIERS
from agents.web.memory import MemoryViewsReader
from agents.web.reader import ViewsReader

__all__ = ["TIERS", "TIER_HEADER", "MemoryViewsReader", "ViewsReader", "make_app", "routes"]
