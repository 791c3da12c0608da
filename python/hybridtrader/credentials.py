"""API credentials and where they may go, and the one place credentials are redacted from text.

Keys travel with their endpoints: a configured key is sent only to the URL configured beside it. A service
without a configured URL is the local venue, which gets its fixed local keys (not secrets: they only keep
clients honest about sending keys; a real provider answers them with an authentication error); configured
keys are then ignored with a warning, never sent to the local venue.

Every secret handed out here is remembered, so `redact` removes it from any text (log records, error
messages, URLs), together with anything that looks like a credential in a URL query (`token=`, `apiKey=`)
or a key header (`APCA-API-KEY-ID: ...`), whether or not it was configured.
"""

from __future__ import annotations

import logging
import os
import re
import threading

from pydantic import SecretStr

from hybridtrader.config import Config

log = logging.getLogger(__name__)

LOCAL_KEY = "hybridtrader-local-key"
LOCAL_SECRET = "hybridtrader-local-secret"
LOCAL_FINNHUB_TOKEN = "hybridtrader-local-finnhub"
MASK = "**********"

_known: set[str] = set()
_known_lock = threading.Lock()
_warned: set[str] = set()
# A credential named by its usual parameter name: in a URL query or assignment (`token=...`), a quoted
# JSON/dict field (`"apiKey": "..."`), or a key header (`APCA-API-KEY-ID: ...`). A bare `name: text` is
# left alone: it is how our own messages name a key path.
_PARAM = r"(?:token|api[_-]?key|apikey|access[_-]?token|secret[_-]?key|secret|password|key)"
_HEADER = r"(?:apca-api-key-id|apca-api-secret-key|x-finnhub-token|x-api-key|authorization)"
_NAMED = re.compile(
    rf"""(?ix)
    (?P<name>\b{_PARAM}=
      | ["']{_PARAM}["']\s*:\s*["']
      | \b{_HEADER}["']?\s*[=:]\s*["']?(?:bearer\s+)?)
    (?P<value>[^\s&"',;}}]+)
    """
)


AUTH_FAILURES = (401, 403)  # HTTP answers that retrying with the same keys cannot change


def auth_hint(url: str) -> str:
    """What to do when `url` refused the keys sent to it."""
    return (f"the keys sent to {url} are not valid there; configured keys go only to the URLs configured "
            "beside them (alpaca.data_url / trading_url / stream_url), the local venue takes its own keys")


def remember(secret: str) -> str:
    """Mark `secret` for redaction everywhere; returns it."""
    if len(secret) >= 4:  # a shorter "secret" would redact ordinary words
        with _known_lock:
            _known.add(secret)
    return secret


def redact(text: str) -> str:
    """`text` with every remembered secret and every named credential replaced by the mask."""
    with _known_lock:
        known = sorted(_known, key=len, reverse=True)
    for secret in known:
        if secret in text:
            text = text.replace(secret, MASK)
    return _NAMED.sub(lambda m: m.group("name") + MASK if m.group("value") != MASK else m.group(0), text)


def secret_value(value: SecretStr | None) -> str | None:
    """The secret's value (remembered for redaction), or None."""
    return None if value is None else remember(value.get_secret_value())


def _is_configured(url: str | None, configured: tuple[str | None, ...]) -> bool:
    """True when `url` is (under) one of the configured URLs."""
    if not url:
        return False
    u = url.rstrip("/")
    return any(c and (u == c.rstrip("/") or u.startswith(c.rstrip("/") + "/")) for c in configured)


def _local_instead(provider: str, url: str | None) -> None:
    if provider not in _warned:
        _warned.add(provider)
        log.warning(
            "%s keys are configured but %s is the local venue (no %s URL configured): the configured keys "
            "are not sent there; set the provider's URLs to use the real service", provider, url, provider,
        )


def alpaca_keys(config: Config, url: str | None) -> tuple[str, str]:
    """The Alpaca key id and secret key to send to `url`: the configured keys if `url` is one of the
    configured Alpaca URLs (trading, data, stream), else the local venue's keys."""
    a = config.alpaca
    if a.has_keys and _is_configured(url, (a.trading_url, a.data_url, a.stream_url)):
        key, secret = secret_value(a.api_key), secret_value(a.secret_key)
        assert key is not None and secret is not None  # has_keys
        return key, secret
    if a.api_key is not None or a.secret_key is not None:
        secret_value(a.api_key), secret_value(a.secret_key)
        _local_instead("alpaca", url)
    return LOCAL_KEY, LOCAL_SECRET


def polygon_key(config: Config, url: str | None) -> str:
    """The Polygon key to send to `url`: the configured one for the configured stream URL, else local."""
    p = config.alpaca.data_sources.polygon
    if p.api_key is not None and _is_configured(url, (p.stream_url,)):
        return remember(p.api_key.get_secret_value())
    if p.api_key is not None:
        secret_value(p.api_key)
        _local_instead("polygon", url)
    return LOCAL_KEY


def finnhub_token(config: Config, url: str | None) -> str | None:
    """The Finnhub token to send to `url`: the configured one (config or $FINNHUB_API_KEY) for the
    configured URL; the local token for the local venue; None for a foreign URL without a token."""
    f = config.finnhub
    configured = secret_value(f.api_key) or (remember(os.environ["FINNHUB_API_KEY"])
                                             if os.environ.get("FINNHUB_API_KEY") else None)
    if f.url is not None and _is_configured(url, (f.url,)):
        return configured
    if f.url is None:
        if configured is not None:
            _local_instead("finnhub", url)
        return LOCAL_FINNHUB_TOKEN
    return None


def drop_keys_for_local_venue(config: Config) -> None:
    """Remove every configured credential from `config` (in place, with a warning when there were any):
    for a command that points the provider URLs at a local venue it started."""
    a, p, f = config.alpaca, config.alpaca.data_sources.polygon, config.finnhub
    if any(v is not None for v in (a.api_key, a.secret_key, p.api_key, f.api_key)):
        for secret in (a.api_key, a.secret_key, p.api_key, f.api_key):
            secret_value(secret)
        log.warning("configured API keys are ignored: this command talks to the local venue it started")
    a.api_key = a.secret_key = p.api_key = f.api_key = None

