"""Dynamic position sizing: ATR risk budget, regime and volatility scaling, fractional Kelly, caps.

shares = floor(min(
    equity x r x m_regime x m_symbol x m_vol / (k x ATR),      risk budget over the stop distance
    equity x max_position_pct / 100 / price,                    position cap
    buying_power / price))                                      buying power (default: equity)

with r = risk_per_trade_pct / 100, lowered to kelly_fraction x max(0, w - (1 - w) / R) when the strategy's
win rate w and payoff ratio R are given (Kelly never raises the configured risk and never goes negative: no
edge means no trade), and m_vol = min(target_volatility / realised_vol, max_volatility_scale) when a
realised volatility (annualised fraction) is given. Configuration: `risk.sizing`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import polars as pl

from hybridtrader.config import ConfigLike, SizingConfig, config_section, regime_key
from hybridtrader.errors import ConfigError


def _positive(name: str, value: float) -> float:
    v = _finite(name, value)
    if v <= 0:
        raise ConfigError(f"{name} must be > 0, got {value!r}")
    return v


def _finite(name: str, value: float) -> float:
    if isinstance(value, bool | str | bytes):
        raise ConfigError(f"{name} must be a number, got {value!r}")
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(v):
        raise ConfigError(f"{name} must be finite, got {value!r}")
    return v


_HEAT_COLUMNS = {
    "qty": ("qty",),
    "entry_price": ("entry_price", "entry"),
    "stop_price": ("stop_price", "stop"),
}


def _pick(row: Mapping[str, Any], field: str, i: int) -> Any:
    for key in _HEAT_COLUMNS[field]:
        if key in row:
            return row[key]
    raise ConfigError(f"positions[{i}] has no {field!r} (keys: {', '.join(map(str, row))})")


def _signed_qty(qty: float, side: Any, where: str) -> float:
    if side is None:
        return qty
    if side == "buy":
        return abs(qty)
    if side == "sell":
        return -abs(qty)
    raise ConfigError(f"{where}: side must be 'buy' or 'sell', got {side!r}")


class DynamicSizer:
    """Position sizing from `risk.sizing`; see the module documentation for the formula."""

    def __init__(self, config: ConfigLike = None):
        self.config: SizingConfig = config_section(config, "risk.sizing")

    def regime_multiplier(self, regime: str | None) -> float:
        """The configured multiplier of a regime (None: 1.0); names match case-insensitively with "-" or
        " " for "_" ("High Volatility" is high_volatility). ValueError for an unknown regime."""
        if regime is None:
            return 1.0
        if not isinstance(regime, str):
            raise ConfigError(f"regime must be a str or None, got {regime!r}")
        try:
            return self.config.regime_multipliers[regime_key(regime)]
        except KeyError:
            known = ", ".join(sorted(self.config.regime_multipliers))
            raise ConfigError(f"unknown regime {regime!r} (known: {known})") from None

    def calculate_position_size(
        self,
        equity: float,
        price: float,
        atr: float,
        symbol: str,
        regime: str | None = None,
        *,
        realized_vol: float | None = None,
        win_rate: float | None = None,
        payoff_ratio: float | None = None,
        buying_power: float | None = None,
    ) -> int:
        """Whole shares to trade (>= 0). Invalid inputs raise ValueError naming the argument."""
        c = self.config
        equity = _positive("equity", equity)
        price = _positive("price", price)
        atr = _positive("atr", atr)
        if not isinstance(symbol, str) or not symbol:
            raise ConfigError(f"symbol must be a non-empty str, got {symbol!r}")
        risk = c.risk_per_trade_pct / 100.0
        if win_rate is not None or payoff_ratio is not None:
            if win_rate is None or payoff_ratio is None:
                raise ConfigError("win_rate and payoff_ratio must be given together for Kelly sizing")
            w = _finite("win_rate", win_rate)
            if not 0.0 <= w <= 1.0:
                raise ConfigError(f"win_rate must be in [0, 1], got {win_rate!r}")
            r = _positive("payoff_ratio", payoff_ratio)
            risk = min(risk, c.kelly_fraction * max(0.0, w - (1.0 - w) / r))
        scale = self.regime_multiplier(regime) * c.symbol_risk_multipliers.get(symbol, 1.0)
        if realized_vol is not None:
            vol = _positive("realized_vol", realized_vol)
            scale *= min(c.target_volatility / vol, c.max_volatility_scale)
        power = equity if buying_power is None else _finite("buying_power", buying_power)
        if power < 0:
            raise ConfigError(f"buying_power must be >= 0, got {buying_power!r}")
        shares = min(
            equity * risk * scale / (c.atr_multiple * atr),
            equity * c.max_position_pct / 100.0 / price,
            power / price,
        )
        # The tiny relative tolerance keeps exact quotients (e.g. 2000 / 20) from flooring one share short.
        return max(0, math.floor(shares * (1.0 + 1e-12)))

    def calculate_portfolio_heat(
        self, positions: Sequence[Mapping[str, Any]] | pl.DataFrame, equity: float
    ) -> float:
        """Share of `equity` lost if every stop were hit at once: sum(max(0, (entry - stop) x qty)) / equity.

        `positions`: a list of dicts or a Polars frame with `qty`, `entry_price` (or `entry`) and
        `stop_price` (or `stop`), and optionally `side`. `qty` is signed (short < 0) unless `side`
        ("buy"/"sell") is given, which then sets the sign. A stop on the profitable side of the entry
        (a trailing stop past break-even) contributes no loss. Returns a fraction (0.05 = 5%)."""
        equity = _positive("equity", equity)
        if isinstance(positions, pl.DataFrame):
            rows: Sequence[Mapping[str, Any]] = positions.to_dicts()
        else:
            rows = positions
        total = 0.0
        for i, row in enumerate(rows):
            qty = _finite(f"positions[{i}].qty", _pick(row, "qty", i))
            entry = _positive(f"positions[{i}].entry_price", _pick(row, "entry_price", i))
            stop = _finite(f"positions[{i}].stop_price", _pick(row, "stop_price", i))
            if stop < 0:
                raise ConfigError(f"positions[{i}].stop_price must be >= 0, got {stop!r}")
            qty = _signed_qty(qty, row.get("side"), f"positions[{i}]")
            total += max(0.0, (entry - stop) * qty)
        return total / equity

    def should_reduce_sizing(
        self,
        heat: float | None = None,
        drawdown: float | None = None,
        recent_pnls: Sequence[float] | None = None,
    ) -> tuple[bool, float, str]:
        """`(reduce, factor, reason)`: the factor (0..1) to apply to new position sizes.

        `heat` is a fraction of equity (as from `calculate_portfolio_heat`): at `max_heat_pct` no new risk
        (factor 0), from `heat_warn_pct` `heat_warn_factor`. `drawdown` is the fraction below peak equity:
        from `drawdown_reduce_pct` / `drawdown_severe_pct` the matching factors. `recent_pnls` are closed
        trade PnLs, oldest first: `losing_streak` consecutive losses at the end give
        `losing_streak_factor`; a negative sum over the last `rolling_window` trades gives
        `rolling_loss_factor`. The most restrictive factor applies; reasons are joined with "; "."""
        c = self.config
        hits: list[tuple[float, str]] = []
        if heat is not None:
            h = _finite("heat", heat) * 100.0
            if h < 0:
                raise ConfigError(f"heat must be >= 0, got {heat!r}")
            if h >= c.max_heat_pct:
                hits.append((0.0, f"portfolio heat {h:.2f}% >= cap {c.max_heat_pct:.2f}%"))
            elif h >= c.heat_warn_pct:
                hits.append((c.heat_warn_factor, f"portfolio heat {h:.2f}% >= warn {c.heat_warn_pct:.2f}%"))
        if drawdown is not None:
            d = _finite("drawdown", drawdown) * 100.0
            if not 0.0 <= d <= 100.0:
                raise ConfigError(f"drawdown must be a fraction in [0, 1], got {drawdown!r}")
            if d >= c.drawdown_severe_pct:
                hits.append((c.drawdown_severe_factor, f"drawdown {d:.2f}% >= {c.drawdown_severe_pct:.2f}%"))
            elif d >= c.drawdown_reduce_pct:
                hits.append((c.drawdown_reduce_factor, f"drawdown {d:.2f}% >= {c.drawdown_reduce_pct:.2f}%"))
        if recent_pnls is not None:
            pnls = [_finite(f"recent_pnls[{i}]", v) for i, v in enumerate(recent_pnls)]
            streak = 0
            for v in reversed(pnls):
                if v >= 0:
                    break
                streak += 1
            if streak >= c.losing_streak:
                hits.append((c.losing_streak_factor, f"losing streak {streak} >= {c.losing_streak}"))
            window = pnls[-c.rolling_window :]
            if window and sum(window) < 0:
                hits.append(
                    (c.rolling_loss_factor, f"rolling PnL {sum(window):.2f} < 0 over {len(window)} trades")
                )
        if not hits:
            return False, 1.0, "ok"
        factor = min(f for f, _ in hits)
        return factor < 1.0, factor, "; ".join(r for _, r in hits)
