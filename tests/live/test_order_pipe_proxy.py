"""`OrderPipe` behind an HTTP proxy: the HTTP(S)_PROXY / NO_PROXY settings requests honours apply, the
orders travel through a CONNECT tunnel (a real proxy on a loopback socket, piping to the venue), the proxy's
credentials go in Proxy-Authorization and never into a repr, and a refused tunnel loses no order (status 0:
the broker's ordinary path sends it again)."""

from __future__ import annotations

import base64
import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from helpers import LoopbackServer
from hybridtrader.credentials import LOCAL_KEY, LOCAL_SECRET
from hybridtrader.engine.orders import OrderRequest
from hybridtrader.execution.rate_limiter import RateLimiter
from hybridtrader.live.order_pipe import OrderPipe, order_body
from hybridtrader.market.timeconv import utc_ns
from hybridtrader.venue import Venue

T0 = utc_ns(datetime(2024, 1, 2, 15, 0, tzinfo=UTC))


class ConnectProxy:
    """A CONNECT-only HTTP proxy: records each request head, answers `status`, and for a 200 pipes bytes both
    ways between the client and the requested host."""

    def __init__(self, status: bytes = b"200 Connection established") -> None:
        self.status = status
        self.heads: list[bytes] = []
        self.server = LoopbackServer(self._serve)
        self.port = self.server.port

    def _serve(self, client: socket.socket) -> None:
        head = b""
        while b"\r\n\r\n" not in head:
            head += client.recv(4096)
        self.heads.append(head)
        client.sendall(b"HTTP/1.1 " + self.status + b"\r\n\r\n")
        if not self.status.startswith(b"200"):
            client.close()
            return
        host, port = head.split(b" ")[1].decode().rsplit(":", 1)
        upstream = socket.create_connection((host, int(port)))
        for a, b in ((client, upstream), (upstream, client)):
            threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            s.close()

    def close(self) -> None:
        self.server.close()


@pytest.fixture
def proxy() -> Iterator[ConnectProxy]:
    p = ConnectProxy()
    yield p
    p.close()


def _use_proxy(monkeypatch: pytest.MonkeyPatch, url: str, no_proxy: str | None = None) -> None:
    monkeypatch.setenv("HTTP_PROXY", url)
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    if no_proxy is not None:
        monkeypatch.setenv("NO_PROXY", no_proxy)


def _orders(n: int) -> list[bytes]:
    return [order_body(f"ht-p{i}", OrderRequest("S00", "buy", 1.0 + i)) for i in range(n)]


def _pipe(venue: Venue) -> OrderPipe:
    return OrderPipe(venue.url, (LOCAL_KEY, LOCAL_SECRET), RateLimiter(rates=[(1_000_000, 60.0)]))


def test_orders_go_through_the_proxys_tunnel_with_its_credentials(
    live_venue: Venue, proxy: ConnectProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    live_venue.clock.advance_to(T0)
    _use_proxy(monkeypatch, f"http://ops:s%40cret@127.0.0.1:{proxy.port}")
    pipe = _pipe(live_venue)
    try:
        answers = pipe.submit(_orders(3))
    finally:
        pipe.close()
    assert [a.status for a in answers] == [200] * 3
    assert list(live_venue.broker.by_client_id) == ["ht-p0", "ht-p1", "ht-p2"]
    venue_port = live_venue.url.rsplit(":", 1)[1].strip("/")
    assert len(proxy.heads) == 1  # one tunnel carried the pipelined batch
    head = proxy.heads[0].decode()
    assert head.startswith(f"CONNECT 127.0.0.1:{venue_port} HTTP/1.1\r\n")
    assert f"Proxy-Authorization: Basic {base64.b64encode(b'ops:s@cret').decode()}\r\n" in head
    assert "cret" not in repr(pipe) and "ops" not in repr(pipe) and f"{proxy.port}" in repr(pipe)


def test_no_proxy_names_the_host_and_the_pipe_connects_directly(
    live_venue: Venue, proxy: ConnectProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    live_venue.clock.advance_to(T0)
    _use_proxy(monkeypatch, f"http://127.0.0.1:{proxy.port}", no_proxy="localhost,127.0.0.1")
    pipe = _pipe(live_venue)
    try:
        assert [a.status for a in pipe.submit(_orders(2))] == [200, 200]
    finally:
        pipe.close()
    assert proxy.heads == [] and len(live_venue.broker.by_client_id) == 2


def test_a_refused_tunnel_sends_nothing_and_reports_every_order_unanswered(
    live_venue: Venue, monkeypatch: pytest.MonkeyPatch
) -> None:
    live_venue.clock.advance_to(T0)
    refusing = ConnectProxy(b"407 Proxy Authentication Required")
    _use_proxy(monkeypatch, f"http://127.0.0.1:{refusing.port}")
    pipe = _pipe(live_venue)
    try:
        answers = pipe.submit(_orders(2))
    finally:
        pipe.close()
        refusing.close()
    assert [a.status for a in answers] == [0, 0]
    assert len(refusing.heads) == 1 and live_venue.broker.by_client_id == {}
