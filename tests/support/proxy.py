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
import socket
import struct
import threading
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from types import TracebackType

Peer = tuple[str, int]
Selector = Callable[[Peer], bool]

_BUFFER = 256 * 1024
_NETLINK_SOCK_DIAG = 4


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

_SOCK_DIAG_BY_FAMILY = 20
_NLM_F_REQUEST = 1
_NLMSG_ERROR = 2
_INET_DIAG_NOCOOKIE = 0xFFFFFFFF
_INODE_AT = 16 + 68  # nlmsghdr, then inet_diag_msg's idiag_inode


def _socket_inodes(pid: int) -> set[int]:
    inodes: set[int] = set()
    fd_dir = f"/proc/{pid}/fd"
    with contextlib.suppress(OSError):
        for fd in os.listdir(fd_dir):
            with contextlib.suppress(OSError):
                target = os.readlink(f"{fd_dir}/{fd}")
                if target.startswith("socket:["):
                    inodes.add(int(target[8:-1]))
    return inodes


def _client_inode(diag: socket.socket, client: Peer, server: Peer) -> int | None:
    """Inode of the loopback TCP socket `client` -> `server`, asked of the kernel by exact address.

    One sock_diag request per connection: reading /proc/net/tcp instead costs a parse of every
    socket on the machine, which under load starves the proxy's loop during a reconnection storm.
    """
    sockid = struct.pack(
        "!HH16s16s",
        client[1],
        server[1],
        socket.inet_aton(client[0]).ljust(16, b"\0"),
        socket.inet_aton(server[0]).ljust(16, b"\0"),
    ) + struct.pack("=III", 0, _INET_DIAG_NOCOOKIE, _INET_DIAG_NOCOOKIE)
    body = struct.pack("=BBBxI", socket.AF_INET, socket.IPPROTO_TCP, 0, 0xFFFFFFFF) + sockid
    diag.send(struct.pack("=IHHII", 16 + len(body), _SOCK_DIAG_BY_FAMILY, _NLM_F_REQUEST, 0, 0) + body)
    reply = diag.recv(8192)
    (msg_type,) = struct.unpack_from("=H", reply, 4)
    if msg_type == _NLMSG_ERROR or len(reply) < _INODE_AT + 4:
        return None  # gone already (the client gave up), or not a TCP socket of this namespace
    (inode,) = struct.unpack_from("=I", reply, _INODE_AT)
    return int(inode)


def owned_by(pids: Collection[int], proxy_port: int) -> Selector:
    """Selects connections whose client socket belongs to one of `pids`, or is already gone.

    A connection whose client socket no longer exists is selected too: refusing it costs nothing,
    and letting it through would let a closing worker socket slip past a cut. The processes' socket
    inodes are re-read only when a connection's inode is not among those already known.
    """
    diag = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, _NETLINK_SOCK_DIAG)
    owned: set[int] = set()

    def select(peer: Peer) -> bool:
        nonlocal owned
        inode = _client_inode(diag, peer, ("127.0.0.1", proxy_port))
        if inode is None:
            return True
        if inode not in owned:
            owned = set().union(*(_socket_inodes(pid) for pid in pids))
        return inode in owned

    return select
