"""A loopback TCP proxy that can cut connections on demand, to simulate a network failure.

    with TcpProxy(upstream=("127.0.0.1", broker_port), port=advertised_port) as proxy:
        ...
        proxy.cut(only=owned_by(worker_pid))   # reset every matching connection, refuse new ones
        time.sleep(10)
        proxy.restore()

Kafka clients reconnect to the *advertised* address from metadata, not the bootstrap address, so
the proxy must be the broker's advertised listener (see `tests.support.stack.Tansu`).

`cut()` aborts (TCP RST) the connections it selects and closes every new matching connection as
soon as it is accepted, until `restore()`: what a client sees when a link or a firewall drops it.
Connections are selected by the client's address; `owned_by(pid)` selects the sockets of one
process (Linux /proc), so a cut can isolate one worker while partners keep publishing.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

Peer = tuple[str, int]
Selector = Callable[[Peer], bool]

_BUFFER = 256 * 1024


@dataclass
class ProxyStats:
    """What the proxy did: connections accepted, refused while cut, and aborted by a cut."""

    accepted: int = 0
    refused: int = 0
    aborted: int = 0
    bytes_up: int = 0
    bytes_down: int = 0
    refused_peers: list[Peer] = field(default_factory=list)


@dataclass(eq=False)
class _Conn:
    peer: Peer
    client: asyncio.StreamWriter
    upstream: asyncio.StreamWriter | None = None

    def abort(self) -> None:
        for writer in (self.client, self.upstream):
            if writer is not None:
                writer.transport.abort()


class TcpProxy:
    """Forwards 127.0.0.1:`port` to `upstream`, on its own asyncio loop in a daemon thread."""

    def __init__(self, upstream: tuple[str, int], port: int = 0, host: str = "127.0.0.1") -> None:
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError("the proxy listens on loopback only")
        self.upstream = upstream
        self.host = host
        self.port = port
        self.stats = ProxyStats()
        self._conns: set[_Conn] = set()
        self._cut: Selector | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.Server | None = None

    # --- lifecycle ---------------------------------------------------------------------------------
    def start(self, timeout: float = 10.0) -> TcpProxy:
        loop = asyncio.new_event_loop()
        started = threading.Event()
        errors: list[BaseException] = []

        def serve() -> None:
            asyncio.set_event_loop(loop)
            try:
                self._server = loop.run_until_complete(
                    asyncio.start_server(self._handle, self.host, self.port, reuse_address=True)
                )
                self.port = int(self._server.sockets[0].getsockname()[1])
            except BaseException as exc:  # reported to start()
                errors.append(exc)
                started.set()
                return
            started.set()
            loop.run_forever()
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

        self._loop = loop
        self._thread = threading.Thread(target=serve, name=f"tcp-proxy-{self.port}", daemon=True)
        self._thread.start()
        if not started.wait(timeout):
            raise TimeoutError("proxy did not start")
        if errors:
            raise errors[0]
        return self

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return

        async def shutdown() -> None:
            if self._server is not None:
                self._server.close()
            for conn in list(self._conns):
                conn.abort()
            loop.stop()

        asyncio.run_coroutine_threadsafe(shutdown(), loop)
        thread.join(10)
        self._loop = self._thread = None

    def __enter__(self) -> TcpProxy:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # --- failures ----------------------------------------------------------------------------------
    def cut(self, only: Selector | None = None) -> int:
        """Reset every live connection `only` selects (all if None) and refuse new ones; returns resets."""
        selector: Selector = only or (lambda _peer: True)
        return self._call(self._cut_now, selector)

    def restore(self) -> None:
        """Accept and forward connections again."""
        self._call(self._restore_now)

    @property
    def live(self) -> int:
        return len(self._conns)

    def _call(self, fn: Callable[..., int | None], *args: object) -> int:
        loop = self._loop
        if loop is None:
            raise RuntimeError("proxy is not running")

        async def run() -> int:
            return fn(*args) or 0

        return asyncio.run_coroutine_threadsafe(run(), loop).result(10)

    def _cut_now(self, selector: Selector) -> int:
        self._cut = selector
        victims = [c for c in self._conns if selector(c.peer)]
        for conn in victims:
            conn.abort()
            self._conns.discard(conn)
        self.stats.aborted += len(victims)
        return len(victims)

    def _restore_now(self) -> None:
        self._cut = None

    # --- forwarding --------------------------------------------------------------------------------
    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peername = writer.get_extra_info("peername")
        peer: Peer = (str(peername[0]), int(peername[1]))
        if self._cut is not None and self._cut(peer):
            self.stats.refused += 1
            self.stats.refused_peers.append(peer)
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream, limit=_BUFFER)
        except OSError:
            writer.transport.abort()
            return
        conn = _Conn(peer, writer, up_writer)
        self._conns.add(conn)
        self.stats.accepted += 1
        try:
            await asyncio.gather(
                self._pump(reader, up_writer, conn, upstream=True),
                self._pump(up_reader, writer, conn, upstream=False),
            )
        finally:
            self._conns.discard(conn)
            conn.abort()

    async def _pump(
        self, src: asyncio.StreamReader, dst: asyncio.StreamWriter, conn: _Conn, *, upstream: bool
    ) -> None:
        try:
            while True:
                data = await src.read(_BUFFER)
                if not data:
                    break
                if upstream:
                    self.stats.bytes_up += len(data)
                else:
                    self.stats.bytes_down += len(data)
                dst.write(data)
                await dst.drain()
        except (ConnectionError, OSError, asyncio.CancelledError):
            pass
        finally:
            with contextlib.suppress(Exception):
                dst.close()


# --- selecting the connections of one process (Linux) ------------------------------------------------


def _socket_inodes(pid: int) -> set[str]:
    inodes: set[str] = set()
    fd_dir = Path(f"/proc/{pid}/fd")
    with contextlib.suppress(OSError):
        for fd in os.listdir(fd_dir):
            with contextlib.suppress(OSError):
                target = os.readlink(fd_dir / fd)
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
    return inodes


def _inodes_of_client(port: int, remote_port: int | None) -> set[str]:
    """Inodes of TCP sockets whose local port is `port` (and remote port `remote_port`, if given)."""
    local = f":{port:04X}"
    remote = f":{remote_port:04X}" if remote_port is not None else ""
    found: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                cols = line.split()
                if len(cols) > 9 and cols[1].endswith(local) and cols[2].endswith(remote):
                    found.add(cols[9])
    return found


def owned_by(pids: Collection[int], proxy_port: int | None = None) -> Selector:
    """Selects connections whose client socket belongs to one of `pids` (looked up once per peer).

    `proxy_port` (the port the clients connect to) makes the lookup exact when two sockets share an
    ephemeral local port.
    """
    cache: dict[Peer, bool] = {}

    def select(peer: Peer) -> bool:
        if peer not in cache:
            inodes = _inodes_of_client(peer[1], proxy_port)
            cache[peer] = any(inodes & _socket_inodes(pid) for pid in pids)
        return cache[peer]

    return select
