"""`sharebus` as the tests run it: the production entry point with short consumer-group timeouts.

    python -m tests.support.worker_main worker      (what `tests.workers.start_worker` runs)

The worker's consumers (Faust's, `agents/app.py`, and the batched confluent-kafka ones,
`agents/batched.py`) use a 10 s session timeout. On Tansu a consumer group's first join waits about
half of it, and a worker killed with -9 keeps its partitions until it expires (FAUST-NOTES.md: "use
2000 ms in tests"), so every worker start cost ~10 s before it consumed and every restart after a
kill ~20 s. This sets SESSION_TIMEOUT and HEARTBEAT_INTERVAL on both kinds of consumer and changes
nothing else: same CLI, same settings, same code path. A product setting for these timeouts would
make the patch unnecessary.

If the product's code moves so that the patch no longer applies, the worker runs with the product's
own timeouts (slower, still correct) and says so in its log.
"""

from __future__ import annotations

import sys
from typing import Any

SESSION_TIMEOUT = 4.0  # seconds: 8 heartbeats, so a loaded machine does not see spurious rebalances
HEARTBEAT_INTERVAL = 0.5


def install() -> list[str]:
    """Patch the worker's consumer factories; returns what could not be patched (empty: all)."""
    missing: list[str] = []
    try:
        import agents.app as app_module

        create_app = app_module.create_app

        def create_app_for_tests(*args: Any, **kwargs: Any) -> Any:
            app = create_app(*args, **kwargs)
            app.conf.broker_session_timeout = SESSION_TIMEOUT
            app.conf.broker_heartbeat_interval = HEARTBEAT_INTERVAL
            return app

        app_module.create_app = create_app_for_tests
    except (ImportError, AttributeError):
        missing.append("agents.app.create_app")
    try:
        import agents.batched as batched

        consumer_class = batched.Consumer

        def consumer_for_tests(conf: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
            timeouts = {
                "session.timeout.ms": int(SESSION_TIMEOUT * 1000),
                "heartbeat.interval.ms": int(HEARTBEAT_INTERVAL * 1000),
            }
            return consumer_class({**conf, **timeouts}, *args, **kwargs)

        batched.Consumer = consumer_for_tests  # type: ignore[misc,assignment]
    except (ImportError, AttributeError):
        missing.append("agents.batched.Consumer")
    return missing


def main() -> None:
    missing = install()
    from streams.cli.main import main as sharebus

    if missing:
        print(
            f"tests.support.worker_main: {missing} not patched: the product's timeouts apply", file=sys.stderr
        )
    sharebus()


if __name__ == "__main__":
    main()
