"""What differs between the Alpaca and Polygon streams: URLs, handshake, auth and subscribe messages,
and the meaning of their control messages."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import msgpack
import orjson

from hybridtrader.errors import ConfigError, StreamError
from hybridtrader.stream.messages import Encoding, FrameParser, Provider

Channel = Literal["trades", "quotes", "bars"]
CHANNELS: tuple[Channel, ...] = ("trades", "quotes", "bars")


class AuthError(StreamError):
    """The provider refused the credentials (Alpaca 402, Polygon auth_failed): retrying cannot help."""


class ConnectionLimitError(StreamError):
    """Alpaca 406: too many connections for the account; retried after a long pause."""


class ProtocolError(StreamError):
    """The server did not follow the handshake (no 'connected', unexpected reply); retried like a drop."""


@dataclass
class Subscriptions:
    """Symbols per channel; what a (re)connected socket subscribes to."""

    trades: set[str] = field(default_factory=set)
    quotes: set[str] = field(default_factory=set)
    bars: set[str] = field(default_factory=set)

    def get(self, channel: Channel) -> set[str]:
        return getattr(self, channel)

    def empty(self) -> bool:
        return not (self.trades or self.quotes or self.bars)


class StreamProtocol(ABC):
    """One provider's wire conventions."""

    provider: Provider
    encoding: Encoding

    def __init__(self, url: str, encoding: Encoding = "json") -> None:
        if not url.startswith(("ws://", "wss://")):
            raise ConfigError(f"stream url must start with ws:// or wss://, got {url!r}")
        self.url = url
        self.encoding = encoding

    def parser(self) -> FrameParser:
        return FrameParser(self.provider, self.encoding)

    def headers(self) -> dict[str, str]:
        return {}

    def encode(self, msg: dict[str, Any]) -> bytes | str:
        return msgpack.packb(msg) if self.encoding == "msgpack" else orjson.dumps(msg).decode()

    @abstractmethod
    def auth(self) -> dict[str, Any]:
        """See the concrete providers."""

    @abstractmethod
    def subscription(
        self, action: Literal["subscribe", "unsubscribe"], subs: Subscriptions
    ) -> dict[str, Any]:
        """See the concrete providers."""

    @abstractmethod
    def is_connected(self, msg: dict[str, Any]) -> bool:
        """See the concrete providers."""

    @abstractmethod
    def check_auth(self, msg: dict[str, Any]) -> bool | None:
        """True: authenticated; None: not an auth reply; raises AuthError/ConnectionLimitError/StreamError."""


class AlpacaProtocol(StreamProtocol):
    provider: Provider = "alpaca"

    def __init__(self, url: str, key: str, secret: str, encoding: Encoding = "json") -> None:
        super().__init__(url, encoding)
        self._key, self._secret = key, secret

    def headers(self) -> dict[str, str]:
        # Alpaca picks the wire format from the handshake's Content-Type, as alpaca-py relies on.
        return {"Content-Type": "application/msgpack"} if self.encoding == "msgpack" else {}

    def auth(self) -> dict[str, Any]:
        return {"action": "auth", "key": self._key, "secret": self._secret}

    def subscription(
        self, action: Literal["subscribe", "unsubscribe"], subs: Subscriptions
    ) -> dict[str, Any]:
        return {"action": action, **{c: sorted(subs.get(c)) for c in CHANNELS}}

    def is_connected(self, msg: dict[str, Any]) -> bool:
        return msg.get("T") == "success" and msg.get("msg") == "connected"

    def check_auth(self, msg: dict[str, Any]) -> bool | None:
        if msg.get("T") == "success" and msg.get("msg") == "authenticated":
            return True
        if msg.get("T") == "error":
            raise alpaca_error(msg)
        return None

    def __repr__(self) -> str:  # never the secret
        return f"AlpacaProtocol(url={self.url!r}, encoding={self.encoding!r})"


def alpaca_error(msg: dict[str, Any]) -> StreamError:
    code, text = msg.get("code"), msg.get("msg", "")
    if code == 402:
        return AuthError(f"alpaca stream: authentication failed (402 {text})")
    if code == 406:
        return ConnectionLimitError(f"alpaca stream: connection limit exceeded (406 {text})")
    return StreamError(f"alpaca stream error {code}: {text}")


class PolygonProtocol(StreamProtocol):
    provider: Provider = "polygon"
    _PREFIX: ClassVar[dict[str, str]] = {"trades": "T", "quotes": "Q", "bars": "AM"}

    def __init__(self, url: str, key: str) -> None:
        super().__init__(url, "json")
        self._key = key

    def auth(self) -> dict[str, Any]:
        return {"action": "auth", "params": self._key}

    def subscription(
        self, action: Literal["subscribe", "unsubscribe"], subs: Subscriptions
    ) -> dict[str, Any]:
        topics = [f"{self._PREFIX[c]}.{s}" for c in CHANNELS for s in sorted(subs.get(c))]
        return {"action": action, "params": ",".join(topics)}

    def is_connected(self, msg: dict[str, Any]) -> bool:
        return msg.get("ev") == "status" and msg.get("status") == "connected"

    def check_auth(self, msg: dict[str, Any]) -> bool | None:
        status = msg.get("status")
        if status == "auth_success":
            return True
        if status == "auth_failed":
            raise AuthError(f"polygon stream: authentication failed ({msg.get('message', '')})")
        if status == "max_connections":
            raise ConnectionLimitError(f"polygon stream: connection limit ({msg.get('message', '')})")
        if status == "error":
            raise StreamError(f"polygon stream error: {msg.get('message', '')}")
        return None

    def __repr__(self) -> str:
        return f"PolygonProtocol(url={self.url!r})"
