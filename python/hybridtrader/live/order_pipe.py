"""`OrderPipe`: a bar time's orders out at once — Alpaca's `POST /v2/orders`, pipelined on one persistent
HTTP/1.1 connection.

Why not alpaca-py's `TradingClient.submit_order` for this: each call costs about half a millisecond of
Python (pydantic request model, requests' session machinery, the response model) and waits for its
answer before the next request can leave, so the 50th order of a bar time left 50 round trips after the
first. Here each request is a few hundred bytes built with orjson, and every order the rate limiter
admits goes to the kernel in ONE write, in decision order; the answers are then read as they arrive
(the server answers a connection's requests in order, RFC 9112 §9.3). One connection, not a pool: the
broker then sees a bar time's orders in decision order on every run, as the sequential client did
(a pool would let them overtake one another, and a restarted run would not produce the same tape).

Pipelining a non-idempotent POST is safe here because a submit is idempotent by its client order id
(RFC 9112 asks for a means to recover from a partial failure, and this is it): an order whose answer
never came back (connection dropped mid-pipeline, timeout) is reported with status 0, and the broker
sends it again on its ordinary path, where a duplicate is refused and looked up.

Rate limit: every request is admitted by the `RateLimiter` before it is written. The orders the budget
admits now leave together; the rest of the bar time (Alpaca: more than 200 in a minute) leave one by one
as the window frees room, in decision order, while the answers of those in flight are read. They were
all journaled before the first left, so a crash while they wait leaves intents that reconciliation
finds unsent, and the node re-decides them.

Proxies: the HTTP(S)_PROXY / NO_PROXY settings requests honours (alpaca-py's path) apply here too; the
connection is a CONNECT tunnel through the proxy (RFC 9110 §9.3.6), with TLS to the broker inside it.
"""

from __future__ import annotations

import base64
import math
import select
import socket
import ssl
import time
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit
from urllib.request import getproxies, proxy_bypass

import orjson

from hybridtrader.engine.orders import OrderRequest
from hybridtrader.execution.rate_limiter import RateLimiter


@dataclass
class Answer:
    """One order's trip: `sent` when its request was in the kernel's send buffer, `answered` when its answer
    was read (perf_counter seconds; nan when none came), the HTTP status (0: no answer) and the body."""

    sent: float = math.nan
    answered: float = math.nan
    status: int = 0
    body: bytes = b""


def order_body(client_order_id: str, r: OrderRequest) -> bytes:
    """The JSON of `POST /v2/orders` for `r` (the fields alpaca-py's order requests send)."""
    fields: dict[str, object] = {
        "symbol": r.symbol,
        "qty": r.qty,
        "side": r.side,
        "type": r.type,
        "time_in_force": r.time_in_force,
        "client_order_id": client_order_id,
    }
    if r.type in ("limit", "stop_limit"):
        fields["limit_price"] = r.limit_price
    if r.type in ("stop", "stop_limit"):
        fields["stop_price"] = r.stop_price
    return orjson.dumps(fields)


@dataclass(frozen=True)
class Proxy:
    """An HTTP proxy to tunnel through: address and the Proxy-Authorization value (b"" for none)."""

    host: str
    port: int
    auth: bytes = b""

    def __repr__(self) -> str:  # its credentials stay out of logs and errors
        return f"Proxy({self.host}:{self.port})"


def proxy_for(scheme: str, host: str) -> Proxy | None:
    """The proxy requests would use for `scheme://host`: HTTPS_PROXY / HTTP_PROXY (either case), unless
    NO_PROXY names the host."""
    url = getproxies().get(scheme)
    if not url or proxy_bypass(host):
        return None
    p = urlsplit(url if "://" in url else f"http://{url}")
    auth = b""
    if p.username is not None:
        pair = f"{unquote(p.username)}:{unquote(p.password or '')}".encode()
        auth = b"Basic " + base64.b64encode(pair)
    return Proxy(p.hostname or "localhost", p.port or 8080, auth)


def tunnel(proxy: Proxy, host: str, port: int, timeout_s: float) -> socket.socket:
    """A connection to `host:port` through `proxy` (HTTP CONNECT). Raises OSError naming the proxy and its
    status line when it refuses."""
    sock = socket.create_connection((proxy.host, proxy.port), timeout=timeout_s)
    request = f"CONNECT {host}:{port} HTTP/1.1\r\nHost: {host}:{port}\r\n".encode()
    if proxy.auth:
        request += b"Proxy-Authorization: " + proxy.auth + b"\r\n"
    sock.sendall(request + b"\r\n")
    head = b""
    while b"\r\n\r\n" not in head:  # a 2xx answer to CONNECT has no body: the tunnel follows the head
        chunk = sock.recv(4096)
        if not chunk:
            break
        head += chunk
    status = head.split(b"\r\n", 1)[0].decode("latin-1")
    if not status.startswith("HTTP/1.") or status[9:10] != "2" or not head.endswith(b"\r\n\r\n"):
        sock.close()
        raise OSError(f"proxy {proxy.host}:{proxy.port} refused the tunnel to {host}:{port}: {status!r}")
    return sock


class OrderPipe:
    """Orders to `trading_url` (`http(s)://host[:port][/base]`) with the account's keys; `submit` sends a
    batch and returns each order's `Answer`."""

    def __init__(
        self, trading_url: str, keys: tuple[str, str], limiter: RateLimiter, timeout_s: float = 10.0
    ) -> None:
        url = urlsplit(trading_url)
        self.host = url.hostname or "localhost"
        self.tls = url.scheme == "https"
        self.port = url.port or (443 if self.tls else 80)
        self.proxy = proxy_for(url.scheme, self.host)
        self.limiter, self.timeout_s = limiter, timeout_s
        host = self.host if url.port is None else f"{self.host}:{url.port}"
        self._head = (
            f"POST {url.path.rstrip('/')}/v2/orders HTTP/1.1\r\nHost: {host}\r\n"
            f"APCA-API-KEY-ID: {keys[0]}\r\nAPCA-API-SECRET-KEY: {keys[1]}\r\n"
            "User-Agent: hybridtrader\r\nContent-Type: application/json\r\nContent-Length: "
        ).encode()
        self._sock: socket.socket | None = None
        self._buf = bytearray()

    def __repr__(self) -> str:  # the keys (and the proxy's) stay out of logs and errors
        via = "" if self.proxy is None else f" via {self.proxy!r}"
        return f"OrderPipe({'https' if self.tls else 'http'}://{self.host}:{self.port}{via})"

    def open(self) -> None:
        """Connect now (TCP, and TLS for https) unless connected: the first bar time then pays no
        handshake. A connection the server closed while idle is replaced."""
        if self._sock is not None:
            readable, _, _ = select.select([self._sock], [], [], 0)
            if not readable:
                return
            self.close()  # readable while idle: the server closed it (or broke the protocol)
        if self.proxy is None:
            sock = socket.create_connection((self.host, self.port), timeout=self.timeout_s)
        else:
            sock = tunnel(self.proxy, self.host, self.port, self.timeout_s)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.tls:
            sock = ssl.create_default_context().wrap_socket(sock, server_hostname=self.host)
        self._sock, self._buf = sock, bytearray()

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
        self._sock = None

    def submit(self, bodies: list[bytes]) -> list[Answer]:
        """Send every order body (decision order), return their answers in the same order. Never raises for
        the network: an order whose request or answer was lost has status 0."""
        answers = [Answer() for _ in bodies]
        try:
            self.open()
        except OSError:
            return answers
        head, limiter = self._head, self.limiter
        requests = [head + str(len(b)).encode() + b"\r\n\r\n" + b for b in bodies]
        written = read = 0
        try:
            while read < len(bodies):
                start = written
                while written < len(bodies) and limiter.try_acquire():
                    written += 1
                if written == start and read == written:  # over budget, nothing in flight: wait for room
                    limiter.acquire()
                    written += 1
                if written > start:
                    self._write(b"".join(requests[start:written]))
                    now = time.perf_counter()
                    for a in answers[start:written]:
                        a.sent = now
                answer = answers[read]
                answer.status, answer.body, keep = self._read()
                answer.answered = time.perf_counter()
                read += 1
                if not keep:  # the server closes after this answer: the rest go the ordinary way
                    break
        except (OSError, ValueError):  # dropped, timed out, or not HTTP: what is unanswered goes again
            self.close()
        else:
            if read < len(bodies):
                self.close()
        return answers

    def _write(self, data: bytes) -> None:
        assert self._sock is not None
        self._sock.sendall(data)

    def _fill(self) -> None:
        assert self._sock is not None
        chunk = self._sock.recv(65536)
        if not chunk:
            raise ConnectionError("the broker closed the connection")
        self._buf += chunk

    def _read(self) -> tuple[int, bytes, bool]:
        """The next answer: (status, body, connection stays open). Content-Length or chunked bodies."""
        buf = self._buf
        while (end := buf.find(b"\r\n\r\n")) < 0:
            self._fill()
        lines = bytes(buf[:end]).decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = {k.strip().lower(): v.strip().lower() for k, _, v in (x.partition(":") for x in lines[1:])}
        keep = headers.get("connection") != "close"
        pos = end + 4
        if "chunked" in headers.get("transfer-encoding", ""):
            body = bytearray()
            while True:
                while (eol := buf.find(b"\r\n", pos)) < 0:
                    self._fill()
                size = int(bytes(buf[pos:eol]).split(b";")[0], 16)
                if size == 0:  # then optional trailers and an empty line
                    while (fin := buf.find(b"\r\n\r\n", eol)) < 0:
                        self._fill()
                    del buf[: fin + 4]
                    return status, bytes(body), keep
                while len(buf) < eol + 2 + size + 2:
                    self._fill()
                body += buf[eol + 2 : eol + 2 + size]
                pos = eol + 2 + size + 2
        if "content-length" not in headers:
            raise ValueError(f"an answer with neither Content-Length nor chunked body (status {status})")
        size = int(headers["content-length"])
        while len(buf) < pos + size:
            self._fill()
        body_bytes = bytes(buf[pos : pos + size])
        del buf[: pos + size]
        return status, body_bytes, keep
