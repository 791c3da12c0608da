"""API credentials: the configured ones, or else the local venue's fixed keys (not secrets: they only keep
clients honest about sending keys; a real provider answers them with an authentication error)."""

from __future__ import annotations

from pydantic import SecretStr

from hybridtrader.config import Config

LOCAL_KEY = "hybridtrader-local-key"
LOCAL_SECRET = "hybridtrader-local-secret"
LOCAL_FINNHUB_TOKEN = "hybridtrader-local-finnhub"


def secret_or(value: SecretStr | None, local: str) -> str:
    """The configured secret's value, or `local` when none is set."""
    return local if value is None else value.get_secret_value()


def alpaca_keys(config: Config) -> tuple[str, str]:
    """The Alpaca key id and secret key to send."""
    a = config.alpaca
    return secret_or(a.api_key, LOCAL_KEY), secret_or(a.secret_key, LOCAL_SECRET)
