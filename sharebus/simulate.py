"""`sharebus simulate`: synthetic partner events at a rate, or sample extracts, plus ground truth."""

from __future__ import annotations

import signal
import threading
from pathlib import Path

import typer

from sharebus.common import fail
from streams.errors import SharingBusError
from streams.publish.simulate import Simulation, run, write_extracts
from streams.settings import get_settings


def simulate(
    rate: float = typer.Option(20.0, "--rate", help="Events per second (0: as fast as possible)"),
    duration: float | None = typer.Option(None, "--duration", help="Seconds to run (default: until Ctrl-C)"),
    events: int | None = typer.Option(None, "--events", help="Stop after this many events (extracts: 1000)"),
    seed: int = typer.Option(1, "--seed", help="Random seed: same seed, same people and events"),
    people: int = typer.Option(3000, "--people", help="Size of the synthetic population"),
    truth: Path | None = typer.Option(None, "--truth", help="Write the ground truth here (JSON Lines)"),
    extracts: Path | None = typer.Option(
        None, "--extracts", help="Write partner extracts (CSV/JSONL) to this directory instead of publishing"
    ),
) -> None:
    """Publish simulated events from every partner through the Publisher (or write extracts)."""
    try:
        sim = Simulation(seed, people)
        if extracts is not None:
            paths = write_extracts(sim, extracts, events or 1000)
            for path in paths:
                typer.echo(f"wrote {path}")
            if truth is not None:
                sim.write_truth(truth)
            return
        stop = threading.Event()
        previous = {s: signal.signal(s, lambda *_: stop.set()) for s in (signal.SIGINT, signal.SIGTERM)}
        typer.echo(f"simulating {people} people at {rate:g} events/s (Ctrl-C to stop)", err=True)
        try:
            result = run(
                get_settings(), rate, duration, simulation=sim, events=events, truth_path=truth, stop=stop
            )
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)
    except SharingBusError as exc:
        fail(str(exc))
    typer.echo(f"published: {result.published}, failed: {result.failed} in {result.seconds:.1f}s")
    if result.failed:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("simulate")(simulate)
