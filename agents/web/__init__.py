"""Views over HTTP: the JSON API and the live dashboard (see `agents.web.app`), behind `agents.web.auth`."""

from agents.web.app import make_app, routes
from agents.web.auth import Guard, install
from agents.web.handlers import TIERS
from agents.web.memory import MemoryViewsReader
from agents.web.reader import ViewsReader

__all__ = ["TIERS", "Guard", "MemoryViewsReader", "ViewsReader", "install", "make_app", "routes"]
