//! The order state machine: what the engine knows of one order it sent, moved on by the broker's updates.
//!
//! States: new (sent, not yet acknowledged) -> accepted -> partially_filled -> filled; any open state may
//! end canceled, expired or replaced (the replacement is a new order with its own id), and a new order may
//! be rejected. Fills may arrive before the acknowledgement (a broker's ack latency can exceed its
//! matching latency), so new -> partially_filled / filled is legal. Every other transition is an error:
//! the engine's view of an order never silently diverges from the broker's.
//!
//! Quantity invariant: 0 <= filled_qty <= qty, filled_qty never decreases, and an order is filled exactly
//! when filled_qty == qty (within `QTY_EPS`).

use crate::blake2b;

/// The id of the order for (strategy, symbol, decision time, leg): the same fields give the same id in
/// every run and process, so a restart that re-decides an intent re-uses the id and the broker refuses
/// the duplicate instead of trading twice. "ht-" + the blake2b-128 hex of the fields joined by U+001F
/// (35 characters).
pub fn client_order_id(strategy: &str, symbol: &str, decision_ns: i64, leg: &str) -> String {
    // built by pushes, not `format!` (an order's id is made once per order sent: a hot path)
    let mut key = String::with_capacity(strategy.len() + symbol.len() + leg.len() + 23);
    for (i, part) in [strategy, symbol, &decimal(decision_ns), leg]
        .iter()
        .enumerate()
    {
        if i > 0 {
            key.push('\x1f');
        }
        key.push_str(part);
    }
    let mut id = String::with_capacity(35);
    id.push_str("ht-");
    id.push_str(&blake2b::hex(&blake2b::digest::<16>(key.as_bytes())));
    id
}

/// `n` in decimal, as `format!("{n}")` writes it.
fn decimal(n: i64) -> String {
    let mut digits = [0u8; 20];
    let mut rest = n.unsigned_abs();
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    let mut out = String::with_capacity(21);
    if n < 0 {
        out.push('-');
    }
    out.extend(digits[at..].iter().map(|&d| d as char));
    out
}

/// Tolerance of the quantity invariant (shares are whole in practice; sums of float fills may not be).
pub const QTY_EPS: f64 = 1e-9;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    New,
    Accepted,
    PartiallyFilled,
    Filled,
    Canceled,
    Expired,
    Rejected,
    Replaced,
}

impl Status {
    pub const ALL: [Status; 8] = [
        Status::New,
        Status::Accepted,
        Status::PartiallyFilled,
        Status::Filled,
        Status::Canceled,
        Status::Expired,
        Status::Rejected,
        Status::Replaced,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Status::New => "new",
            Status::Accepted => "accepted",
            Status::PartiallyFilled => "partially_filled",
            Status::Filled => "filled",
            Status::Canceled => "canceled",
            Status::Expired => "expired",
            Status::Rejected => "rejected",
            Status::Replaced => "replaced",
        }
    }

    /// The name Alpaca's trading API gives the state (the fill simulator's orders answer in it): an order
    /// not yet acknowledged is "pending_new"; the others are named alike.
    pub fn alpaca_name(self) -> &'static str {
        match self {
            Status::New => "pending_new",
            other => other.name(),
        }
    }

    pub fn parse(name: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|s| s.name() == name)
    }

    /// The broker may still fill or end the order.
    pub fn is_open(self) -> bool {
        matches!(
            self,
            Status::New | Status::Accepted | Status::PartiallyFilled
        )
    }
}

/// What a broker reports about an order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpdateKind {
    Accepted,
    PartialFill,
    Fill,
    Canceled,
    Expired,
    Rejected,
    Replaced,
}

impl UpdateKind {
    pub const ALL: [UpdateKind; 7] = [
        UpdateKind::Accepted,
        UpdateKind::PartialFill,
        UpdateKind::Fill,
        UpdateKind::Canceled,
        UpdateKind::Expired,
        UpdateKind::Rejected,
        UpdateKind::Replaced,
    ];

    pub fn name(self) -> &'static str {
        match self {
            UpdateKind::Accepted => "accepted",
            UpdateKind::PartialFill => "partial_fill",
            UpdateKind::Fill => "fill",
            UpdateKind::Canceled => "canceled",
            UpdateKind::Expired => "expired",
            UpdateKind::Rejected => "rejected",
            UpdateKind::Replaced => "replaced",
        }
    }

    pub fn parse(name: &str) -> Option<UpdateKind> {
        UpdateKind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// The state an update of this kind moves an order to.
    pub fn target(self) -> Status {
        match self {
            UpdateKind::Accepted => Status::Accepted,
            UpdateKind::PartialFill => Status::PartiallyFilled,
            UpdateKind::Fill => Status::Filled,
            UpdateKind::Canceled => Status::Canceled,
            UpdateKind::Expired => Status::Expired,
            UpdateKind::Rejected => Status::Rejected,
            UpdateKind::Replaced => Status::Replaced,
        }
    }

    /// Whether an order in state `from` may take an update of this kind: acknowledgements and rejects
    /// only of a new order, everything else of any open one.
    pub fn legal_from(self, from: Status) -> bool {
        match self {
            UpdateKind::Accepted | UpdateKind::Rejected => from == Status::New,
            _ => from.is_open(),
        }
    }

    pub fn is_fill(self) -> bool {
        matches!(self, UpdateKind::PartialFill | UpdateKind::Fill)
    }
}

/// Why an update was refused (the order is left unchanged).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum TransitionError {
    /// The kind may not follow the order's state.
    Illegal { from: Status, kind: UpdateKind },
    /// The fill is not positive or takes the filled quantity past the order's.
    Overfill { fill: f64, filled: f64, qty: f64 },
    /// A "fill" that leaves shares open, or a "partial_fill" that leaves none.
    Leaves { kind: UpdateKind, open: f64 },
}

/// One update's content the state machine reads.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Update {
    pub kind: UpdateKind,
    pub ts_ns: i64,
    pub qty: f64,
    pub price: f64,
    pub fee: f64,
}

/// An order's state: its quantity, where it stands, and what it was filled at.
#[derive(Clone, Debug, PartialEq)]
pub struct OrderState {
    pub qty: f64,
    pub status: Status,
    pub filled_qty: f64,
    pub notional: f64, // sum of fill qty x price
    pub fees: f64,
    pub updated_ns: i64,
    pub history: Vec<UpdateKind>,
}

impl OrderState {
    /// A new order of `qty` shares sent at `updated_ns`.
    pub fn new(qty: f64, updated_ns: i64) -> Self {
        OrderState {
            qty,
            status: Status::New,
            filled_qty: 0.0,
            notional: 0.0,
            fees: 0.0,
            updated_ns,
            history: Vec::new(),
        }
    }

    /// Shares still to fill (0 once the order is closed).
    pub fn leaves_qty(&self) -> f64 {
        if self.status.is_open() {
            self.qty - self.filled_qty
        } else {
            0.0
        }
    }

    /// Notional / filled shares (NaN before the first fill).
    pub fn avg_price(&self) -> f64 {
        if self.filled_qty > 0.0 {
            self.notional / self.filled_qty
        } else {
            f64::NAN
        }
    }

    /// Move to the state `update` reports; an error (and no change) when the transition or the
    /// quantities are illegal. Returns the change of `leaves_qty` (after - before).
    pub fn apply(&mut self, update: &Update) -> Result<f64, TransitionError> {
        let kind = update.kind;
        if !kind.legal_from(self.status) {
            return Err(TransitionError::Illegal {
                from: self.status,
                kind,
            });
        }
        // every source of a legal transition is open: leaves was qty - filled_qty
        let before = self.qty - self.filled_qty;
        let mut after = before;
        if kind.is_fill() {
            let filled = self.filled_qty + update.qty;
            // NaN is no positive fill either
            if update.qty.is_nan() || update.qty <= 0.0 || filled > self.qty + QTY_EPS {
                return Err(TransitionError::Overfill {
                    fill: update.qty,
                    filled,
                    qty: self.qty,
                });
            }
            let complete = (filled - self.qty).abs() <= QTY_EPS;
            if complete != (kind == UpdateKind::Fill) {
                return Err(TransitionError::Leaves {
                    kind,
                    open: self.qty - filled,
                });
            }
            self.filled_qty = filled;
            self.notional += update.qty * update.price;
            self.fees += update.fee;
            after = self.qty - filled;
        }
        let target = kind.target();
        self.status = target;
        self.updated_ns = update.ts_ns;
        self.history.push(kind);
        Ok((if target.is_open() { after } else { 0.0 }) - before)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn update(kind: UpdateKind, qty: f64, price: f64) -> Update {
        Update {
            kind,
            ts_ns: 7,
            qty,
            price,
            fee: 0.5,
        }
    }

    #[test]
    fn client_order_ids_are_blake2b_of_the_fields() {
        // hashlib.blake2b(b"s\x1fAAA\x1f-5\x1fentry", digest_size=16).hexdigest()
        assert_eq!(
            client_order_id("s", "AAA", -5, "entry"),
            "ht-79f56f7c24ba49481a0cd6d4988d21c5"
        );
    }

    #[test]
    fn decimals_are_formats() {
        for n in [0, 7, -5, 10, 1_704_207_600_000_000_000, i64::MAX, i64::MIN] {
            assert_eq!(decimal(n), format!("{n}"));
        }
    }

    #[test]
    fn names_round_trip() {
        for s in Status::ALL {
            assert_eq!(Status::parse(s.name()), Some(s));
        }
        for k in UpdateKind::ALL {
            assert_eq!(UpdateKind::parse(k.name()), Some(k));
        }
        assert_eq!(UpdateKind::parse("filled"), None);
    }

    #[test]
    fn ack_partial_then_fill() {
        let mut o = OrderState::new(10.0, 1);
        assert_eq!(o.apply(&update(UpdateKind::Accepted, 0.0, 0.0)), Ok(0.0));
        assert_eq!(
            o.apply(&update(UpdateKind::PartialFill, 4.0, 100.0)),
            Ok(-4.0)
        );
        assert_eq!(o.leaves_qty(), 6.0);
        assert_eq!(o.apply(&update(UpdateKind::Fill, 6.0, 101.0)), Ok(-6.0));
        assert_eq!(o.status, Status::Filled);
        assert_eq!(o.leaves_qty(), 0.0);
        assert_eq!(o.avg_price(), (400.0 + 606.0) / 10.0);
        assert_eq!(o.fees, 1.0);
        assert_eq!(o.updated_ns, 7);
        assert_eq!(
            o.history,
            vec![
                UpdateKind::Accepted,
                UpdateKind::PartialFill,
                UpdateKind::Fill
            ]
        );
    }

    #[test]
    fn a_cancel_releases_what_was_left() {
        let mut o = OrderState::new(10.0, 1);
        o.apply(&update(UpdateKind::PartialFill, 3.0, 1.0)).unwrap();
        assert_eq!(o.apply(&update(UpdateKind::Canceled, 0.0, 0.0)), Ok(-7.0));
        assert!(!o.status.is_open());
    }

    #[test]
    fn illegal_updates_change_nothing() {
        let mut o = OrderState::new(10.0, 1);
        o.apply(&update(UpdateKind::Accepted, 0.0, 0.0)).unwrap();
        let before = o.clone();
        assert_eq!(
            o.apply(&update(UpdateKind::Accepted, 0.0, 0.0)),
            Err(TransitionError::Illegal {
                from: Status::Accepted,
                kind: UpdateKind::Accepted
            })
        );
        assert!(matches!(
            o.apply(&update(UpdateKind::PartialFill, 11.0, 1.0)),
            Err(TransitionError::Overfill { .. })
        ));
        assert!(matches!(
            o.apply(&update(UpdateKind::PartialFill, f64::NAN, 1.0)),
            Err(TransitionError::Overfill { .. })
        ));
        assert_eq!(
            o.apply(&update(UpdateKind::Fill, 4.0, 1.0)),
            Err(TransitionError::Leaves {
                kind: UpdateKind::Fill,
                open: 6.0
            })
        );
        assert!(matches!(
            o.apply(&update(UpdateKind::PartialFill, 10.0, 1.0)),
            Err(TransitionError::Leaves { .. })
        ));
        assert_eq!(o, before);
    }
}
