"""Reconciliation before trading: the journal's view of the run against the broker's.

- Every journaled intent is looked up by its client order id: one the broker has is sent (an intent
  sent but never acknowledged is resolved this way, and marked sent); one it does not have was never sent
  and is left for the engine to re-decide at its own decision time — never re-sent blindly.
- The broker's orders of the run that the journal never wrote are orphans (another process, or a lost
  journal): a mismatch.
- Fills the broker made since the journal's last entry are counted (the replay books them).
- Positions: the broker's positions against the run's starting positions plus every fill of the run's
  orders, per symbol, within `position_tolerance_shares`.
A mismatch is reported; the node alerts and, by `live.on_mismatch`, trades reduce-only or refuses to start.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hybridtrader.engine.events import OrderUpdate
from hybridtrader.live.broker import AlpacaBroker
from hybridtrader.live.journal import Journal
from hybridtrader.market.schema import side_sign


@dataclass
class Reconciliation:
    history: list[OrderUpdate]  # the broker's updates of the run's orders, in time order
    at_broker: set[str]  # client order ids the broker has
    resolved_sent: list[str] = field(default_factory=list)  # journaled unsent, found at the broker
    never_sent: list[str] = field(default_factory=list)  # journaled, unknown to the broker
    orphans: list[str] = field(default_factory=list)  # at the broker, not in the journal
    fills_since_journal: int = 0
    position_diffs: dict[str, tuple[float, float]] = field(
        default_factory=dict
    )  # symbol -> (expected, broker)

    @property
    def mismatches(self) -> list[str]:
        out = [f"order {c} at the broker is not in the journal" for c in self.orphans]
        out += [
            f"{s}: expected {e:g} shares, broker holds {b:g}" for s, (e, b) in self.position_diffs.items()
        ]
        return out

    @property
    def ok(self) -> bool:
        return not self.mismatches


def reconcile(
    broker: AlpacaBroker,
    journal: Journal,
    *,
    since_ns: int,
    start_positions: dict[str, float],
    tolerance: float = 0.0,
    now_ns: int = 0,
) -> Reconciliation:
    """Compare the journal with the broker for the run that began at `since_ns`; resolves what can be
    resolved in the journal (unacknowledged intents found at the broker are marked sent)."""
    intents = journal.intents()
    history = broker.history(since_ns)
    at_broker = {u.client_order_id for u in history}
    rec = Reconciliation(history, at_broker)
    for cid, intent in intents.items():
        if cid in at_broker:
            if intent.sent_ns is None:
                journal.mark_sent(cid, intent.decision_ns)
                rec.resolved_sent.append(cid)
        elif intent.outcome is None and intent.sent_ns is None:
            rec.never_sent.append(cid)
    rec.orphans = sorted(at_broker - set(intents))
    journaled = {(u.client_order_id, u.filled_qty) for u in journal.updates() if u.is_fill}
    expected = dict(start_positions)
    for u in history:
        if u.is_fill and u.client_order_id in intents:
            if (u.client_order_id, u.filled_qty) not in journaled:
                rec.fills_since_journal += 1
            expected[u.symbol] = expected.get(u.symbol, 0.0) + side_sign(u.side) * u.qty
    held = broker.positions()
    for symbol in sorted(set(expected) | set(held)):
        e, b = expected.get(symbol, 0.0), held.get(symbol, 0.0)
        if abs(e - b) > tolerance + 1e-9:
            rec.position_diffs[symbol] = (e, b)
    for line in rec.mismatches:
        journal.event("reconcile_mismatch", line, now_ns)
    return rec
