//! The fill simulator: orders (market, limit, stop, stop-limit; day, gtc, ioc, fok, opg, cls) matched
//! against quotes or, with bars only, against bars; shared by the backtest and the local venue.
//!
//! Rules (the Python docstring of `hybridtrader.execution.fills` states them for users):
//! - Time: an order submitted at `T` becomes active at `A = max(T + entry_latency, session open)` and is
//!   acknowledged (`Accepted`) at `T + ack_latency` (or just before its first fill or cancel, if earlier).
//! - Quotes: a buy takes the ask, a sell the bid, each quote at most its displayed size; an order trades
//!   against the quote standing when it becomes active (the book at `A`, filled at time `A`) and then
//!   against every later quote of its symbol. Each order sees the displayed size on its own (no queue
//!   between our orders). Limits trade when the touch is at the limit or better, at the touch.
//!   Stops trigger when the touch reaches the stop (buy: ask >= stop; sell: bid <= stop) and then act as
//!   a market (stop) or limit (stop-limit) order on that same quote.
//! - Bars (`ts` = bar start): an order trades on bars that start at or after `A`: market at the open;
//!   limit at the open when the open is already at the limit or better (a gap), else at the limit when
//!   the range reaches it; a stop triggers at the open when the bar gaps through it, else at the stop
//!   when the range reaches it, then fills there (stop) or follows the limit rule (stop-limit; a limit
//!   on the far side of an intra-bar trigger waits for the next bar, since the order of the high and low
//!   in a bar is unknown). Each bar gives an order at most `floor(participation x volume)` shares.
//! - Auctions: `opg` trades its whole quantity on the first quote or bar of its session (the quote's touch
//!   or the bar's open), `cls` at the session close on the last quote or bar of the session (the touch or
//!   the bar's close); an auction order that cannot trade there is canceled.
//! - `ioc` trades once (on its first quote or bar) and cancels the rest; `fok` trades its whole quantity
//!   then or is canceled; `day` orders (and unfilled ioc/fok/opg/cls) expire at the session close.
//! - Cancel and replace take effect after the entry latency: an order can fill in between (the race).
//! - Price: touch x (1 +/- impact_bps / 1e4) for the order's side (impact given at submit), never
//!   beyond a limit. Fees per fill: commission `max(per_share x filled, minimum)` charged incrementally
//!   over an order's fills; on sells also the SEC fee (rate x notional) and the FINRA TAF (per share,
//!   capped per fill).
//!
//! Deterministic: no randomness and no wall clock; the same calls give the same events.
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fmt;

use crate::common::{FastMap, Side};
use crate::orders::{Status, UpdateKind};

/// Quantities below this are zero (floating-point residue of partial fills).
const EPS: f64 = 1e-9;
/// "No expiry" for gtc orders.
pub const NEVER: i64 = i64::MAX;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OrderType {
    Market,
    Limit,
    Stop,
    StopLimit,
}

impl OrderType {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "market" => Some(OrderType::Market),
            "limit" => Some(OrderType::Limit),
            "stop" => Some(OrderType::Stop),
            "stop_limit" => Some(OrderType::StopLimit),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            OrderType::Market => "market",
            OrderType::Limit => "limit",
            OrderType::Stop => "stop",
            OrderType::StopLimit => "stop_limit",
        }
    }

    fn has_limit(self) -> bool {
        matches!(self, OrderType::Limit | OrderType::StopLimit)
    }

    fn has_stop(self) -> bool {
        matches!(self, OrderType::Stop | OrderType::StopLimit)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tif {
    Day,
    Gtc,
    Ioc,
    Fok,
    Opg,
    Cls,
}

impl Tif {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "day" => Some(Tif::Day),
            "gtc" => Some(Tif::Gtc),
            "ioc" => Some(Tif::Ioc),
            "fok" => Some(Tif::Fok),
            "opg" => Some(Tif::Opg),
            "cls" => Some(Tif::Cls),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Tif::Day => "day",
            Tif::Gtc => "gtc",
            Tif::Ioc => "ioc",
            Tif::Fok => "fok",
            Tif::Opg => "opg",
            Tif::Cls => "cls",
        }
    }

    /// Trades once, then cancels what is left.
    fn one_shot(self) -> bool {
        !matches!(self, Tif::Day | Tif::Gtc)
    }
}

/// Commission and the regulatory fees on sells, in account currency.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Fees {
    pub commission_per_share: f64,
    pub commission_min: f64,
    /// SEC Section 31 fee: USD per USD of sell notional.
    pub sec_fee_rate: f64,
    /// FINRA Trading Activity Fee: USD per share sold, at most `taf_cap` per fill.
    pub taf_per_share: f64,
    pub taf_cap: f64,
}

impl Fees {
    /// Commission owed on an order that has filled `filled` shares.
    fn commission(&self, filled: f64) -> f64 {
        if filled <= 0.0 {
            0.0
        } else {
            (self.commission_per_share * filled).max(self.commission_min)
        }
    }

    /// Fees of one fill of `qty` at `price` on an order that had filled `before` shares.
    pub fn fill_fee(&self, side: Side, before: f64, qty: f64, price: f64) -> f64 {
        let commission = self.commission(before + qty) - self.commission(before);
        let regulatory = match side {
            Side::Buy => 0.0,
            Side::Sell => {
                self.sec_fee_rate * qty * price + (self.taf_per_share * qty).min(self.taf_cap)
            }
        };
        commission + regulatory
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Settings {
    pub fees: Fees,
    pub entry_latency_ns: i64,
    pub ack_latency_ns: i64,
    /// Largest share of a bar's volume one order may take in that bar, in (0, 1].
    pub bar_participation: f64,
}

impl Settings {
    pub fn validate(&self) -> Result<(), String> {
        let f = &self.fees;
        let money = [
            ("commission_per_share", f.commission_per_share),
            ("commission_min", f.commission_min),
            ("sec_fee_rate", f.sec_fee_rate),
            ("taf_per_share", f.taf_per_share),
            ("taf_cap", f.taf_cap),
        ];
        if let Some((k, v)) = money.iter().find(|(_, v)| !(v.is_finite() && *v >= 0.0)) {
            return Err(format!("{k} must be a finite number >= 0, got {v}"));
        }
        if self.entry_latency_ns < 0 || self.ack_latency_ns < 0 {
            return Err(format!(
                "latencies must be >= 0 ns, got entry {} and ack {}",
                self.entry_latency_ns, self.ack_latency_ns
            ));
        }
        if !(self.bar_participation > 0.0 && self.bar_participation <= 1.0) {
            return Err(format!(
                "bar_participation must be in (0, 1], got {}",
                self.bar_participation
            ));
        }
        Ok(())
    }
}

/// What `submit` is asked for; sides, types and tifs are still text so that a bad value becomes a
/// rejection naming it.
#[derive(Clone, Debug)]
pub struct Request<'a> {
    pub id: &'a str,
    pub symbol: u32,
    pub side: &'a str,
    pub order_type: &'a str,
    pub tif: &'a str,
    pub qty: f64,
    pub limit: Option<f64>,
    pub stop: Option<f64>,
    pub ts: i64,
    /// Market impact in bps beyond the touch (>= 0), from the slippage model at submit.
    pub impact_bps: f64,
    /// The session the order trades in: the one open at `ts + entry latency`, else the next one
    /// (for `opg` after the open: the next one). The caller owns the calendar.
    pub session_open: i64,
    pub session_close: i64,
}

#[derive(Clone, Debug)]
pub struct Order {
    pub id: String,
    pub symbol: u32,
    pub side: Option<Side>,
    pub order_type: Option<OrderType>,
    pub tif: Option<Tif>,
    pub qty: f64,
    pub limit: Option<f64>,
    pub stop: Option<f64>,
    pub impact_bps: f64,
    pub submitted: i64,
    /// First time it may trade.
    pub active: i64,
    pub session_open: i64,
    /// Expiry: the session close, or `NEVER` (gtc).
    pub expires: i64,
    pub filled: f64,
    pub notional: f64,
    pub fees: f64,
    pub status: Status,
    armed: bool,
    triggered: bool,
    acked: bool,
    /// For a replacement waiting for its replace to take effect: the order it replaces.
    replaces: Option<u32>,
}

impl Order {
    pub fn leaves(&self) -> f64 {
        if self.status.is_open() {
            (self.qty - self.filled).max(0.0)
        } else {
            0.0
        }
    }

    pub fn avg_price(&self) -> Option<f64> {
        (self.filled > 0.0).then(|| self.notional / self.filled)
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    pub ts: i64,
    pub order: u32,
    pub kind: UpdateKind,
    pub qty: f64,
    pub price: f64,
    pub fee: f64,
    pub filled: f64,
    pub leaves: f64,
    pub reason: String,
}

/// One quote row.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Quote {
    pub ts: i64,
    pub bid: f64,
    pub ask: f64,
    pub bid_size: f64,
    pub ask_size: f64,
}

impl Quote {
    fn touch(&self, side: Side) -> (f64, f64) {
        match side {
            Side::Buy => (self.ask, self.ask_size),
            Side::Sell => (self.bid, self.bid_size),
        }
    }
}

/// One bar row (`ts` = bar start).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Bar {
    pub ts: i64,
    pub open: f64,
    pub high: f64,
    pub low: f64,
    pub close: f64,
    pub volume: f64,
}

/// Quote columns of a batch (`ts` ascending).
#[derive(Clone, Copy, Debug)]
pub struct QuoteColumns<'a> {
    pub ts: &'a [i64],
    pub bid: &'a [f64],
    pub ask: &'a [f64],
    pub bid_size: &'a [f64],
    pub ask_size: &'a [f64],
}

/// Bar columns of a batch (`ts` = bar start, ascending).
#[derive(Clone, Copy, Debug)]
pub struct BarColumns<'a> {
    pub ts: &'a [i64],
    pub open: &'a [f64],
    pub high: &'a [f64],
    pub low: &'a [f64],
    pub close: &'a [f64],
    pub volume: &'a [f64],
}

/// A loaded batch's bar times as a backtest feeds them: the row each ends at and when it has closed
/// (start + the bar interval), and how far they have been taken (`take_closed`).
#[derive(Clone, Debug, Default)]
pub struct BarTimes {
    ends: Vec<usize>,
    closes_at: Vec<i64>,
    next: usize,
    row: usize,
}

impl BarTimes {
    /// The bar times of rows starting at `ts` (ascending; one bar time per run of equal values), bars
    /// of `every_ns`; none taken yet.
    pub fn new(ts: &[i64], every_ns: i64) -> Self {
        let mut times = Self::default();
        for (i, &t) in ts.iter().enumerate() {
            if ts.get(i + 1) != Some(&t) {
                times.ends.push(i + 1);
                times.closes_at.push(t.saturating_add(every_ns));
            }
        }
        times
    }

    /// The rows of the bar times closed by `now_ns` (closed at or before it) not taken before, now
    /// taken (empty when none).
    pub fn take_closed(&mut self, now_ns: i64) -> std::ops::Range<usize> {
        let start = self.row;
        let closed = self.closes_at[self.next..].partition_point(|&c| c <= now_ns);
        if closed > 0 {
            self.next += closed;
            self.row = self.ends[self.next - 1];
        }
        start..self.row
    }
}

/// Impact (bps) an order pays beyond the touch: the slippage model's cost forecast `cost_bps` less half its
/// spread forecast `spread_bps` (the touch already pays that), never negative.
pub fn impact_bps(cost_bps: f64, spread_bps: f64) -> f64 {
    let x = cost_bps - spread_bps / 2.0;
    if x > 0.0 {
        x
    } else {
        0.0
    }
}

/// A batch's columns: as long as its symbol column, rows in time order.
fn check_batch(n: usize, ts: &[i64], others: &[usize]) -> Result<(), String> {
    if let Some(m) = std::iter::once(&ts.len()).chain(others).find(|&&m| m != n) {
        return Err(format!(
            "column lengths differ: {m} rows against {n} symbols"
        ));
    }
    match ts.windows(2).position(|w| w[1] < w[0]) {
        Some(i) => Err(format!(
            "rows must be sorted by ts: row {} ({}) is before row {} ({})",
            i + 1,
            ts[i + 1],
            i,
            ts[i]
        )),
        None => Ok(()),
    }
}

/// Timer kinds; at equal times they fire in this order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
    Ack,
    Cancel,
    Replace,
    Auction,
    Expire,
    Activate,
}

#[derive(Clone, Copy, Debug, Default)]
struct Book {
    quote: Option<Quote>,
    /// (bar start, close) of the last bar seen.
    bar: Option<(i64, f64)>,
}

#[derive(Debug)]
pub struct FillSimulator {
    settings: Settings,
    orders: Vec<Order>,
    by_id: FastMap<String, u32>, // looked up per order sent: the fast hasher (ids are ours)
    /// Open orders per symbol code (closed ones are dropped lazily).
    open: Vec<Vec<u32>>,
    books: Vec<Book>,
    timers: BinaryHeap<Reverse<(i64, Timer, u64, u32)>>,
    seq: u64,
    events: Vec<Event>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingsError(pub String);

impl fmt::Display for SettingsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SettingsError {}

impl FillSimulator {
    pub fn new(settings: Settings) -> Result<Self, SettingsError> {
        settings.validate().map_err(SettingsError)?;
        Ok(FillSimulator {
            settings,
            orders: Vec::new(),
            by_id: FastMap::default(),
            open: Vec::new(),
            books: Vec::new(),
            timers: BinaryHeap::new(),
            seq: 0,
            events: Vec::new(),
        })
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    pub fn orders(&self) -> &[Order] {
        &self.orders
    }

    pub fn order(&self, slot: u32) -> &Order {
        &self.orders[slot as usize]
    }

    /// Signed shares filled per symbol code (buys +, sells -), summed over every order in submission
    /// order; as long as the highest code of an order with a fill (a code without one is 0).
    pub fn filled_shares(&self) -> Vec<f64> {
        let mut held: Vec<f64> = Vec::new();
        for o in self.orders.iter().filter(|o| o.filled > 0.0) {
            let (Some(side), k) = (o.side, o.symbol as usize) else {
                continue; // an order with no valid side was rejected: it never filled
            };
            if held.len() <= k {
                held.resize(k + 1, 0.0);
            }
            held[k] += side.sign() * o.filled;
        }
        held
    }

    /// The slot of the order with client id `id` (the latest one if a duplicate was rejected).
    pub fn slot(&self, id: &str) -> Option<u32> {
        self.by_id.get(id).copied()
    }

    /// Events since the last drain, in the order they happened.
    pub fn drain(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.events)
    }

    /// The last quote seen for `symbol`.
    pub fn last_quote(&self, symbol: u32) -> Option<Quote> {
        self.books.get(symbol as usize).and_then(|b| b.quote)
    }

    // ------------------------------------------------------------------------------ requests
    /// Submit an order; returns its slot. An invalid request becomes a `Rejected` event.
    pub fn submit(&mut self, r: &Request<'_>) -> u32 {
        self.advance(r.ts);
        let slot = self.new_order(r, None);
        if let Err(reason) = self.check(r) {
            self.reject(slot, r.ts, reason);
        } else {
            self.by_id.insert(r.id.to_owned(), slot);
            self.start(slot, r.ts);
        }
        slot
    }

    /// Ask to cancel order `id` at `ts`; takes effect after the entry latency. False when no open order
    /// has that id (nothing happens then).
    pub fn cancel(&mut self, id: &str, ts: i64) -> bool {
        self.advance(ts);
        match self.slot(id) {
            Some(slot) if self.order(slot).status.is_open() => {
                self.schedule(ts + self.settings.entry_latency_ns, Timer::Cancel, slot);
                self.advance(ts);
                true
            }
            _ => false,
        }
    }

    /// Ask to replace order `id` by `new_id` at `ts` with a new quantity and/or prices (None keeps the
    /// old value; the new quantity defaults to what is left of the old order). Takes effect after the
    /// entry latency: then the old order ends `Replaced` and the new one starts, unless the old one
    /// closed in between (the new one is then rejected). False when no open order has that id.
    #[allow(clippy::too_many_arguments)]
    pub fn replace(
        &mut self,
        id: &str,
        new_id: &str,
        ts: i64,
        qty: Option<f64>,
        limit: Option<f64>,
        stop: Option<f64>,
        impact_bps: f64,
    ) -> Option<u32> {
        self.advance(ts);
        let old = self.slot(id).filter(|&s| self.order(s).status.is_open())?;
        let o = self.order(old).clone();
        let r = Request {
            id: new_id,
            symbol: o.symbol,
            side: o.side.map_or("", Side::as_str),
            order_type: o.order_type.map_or("", OrderType::as_str),
            tif: o.tif.map_or("", Tif::as_str),
            qty: qty.unwrap_or(f64::NAN),
            limit: limit.or(o.limit),
            stop: stop.or(o.stop),
            ts,
            impact_bps,
            session_open: o.session_open,
            session_close: o.expires,
        };
        let slot = self.new_order(&r, Some(old));
        let checked = Request {
            qty: qty.unwrap_or(o.qty - o.filled),
            ..r
        };
        if let Err(reason) = self.check(&checked) {
            self.reject(slot, ts, reason);
        } else {
            self.by_id.insert(new_id.to_owned(), slot);
            self.schedule(ts + self.settings.entry_latency_ns, Timer::Replace, slot);
            self.advance(ts);
        }
        Some(slot)
    }

    fn new_order(&mut self, r: &Request<'_>, replaces: Option<u32>) -> u32 {
        let slot = self.orders.len() as u32;
        let tif = Tif::parse(r.tif);
        self.orders.push(Order {
            id: r.id.to_owned(),
            symbol: r.symbol,
            side: Side::parse(r.side),
            order_type: OrderType::parse(r.order_type),
            tif,
            qty: r.qty,
            limit: r.limit,
            stop: r.stop,
            impact_bps: r.impact_bps,
            submitted: r.ts,
            active: r.ts,
            session_open: r.session_open,
            expires: if tif == Some(Tif::Gtc) {
                NEVER
            } else {
                r.session_close
            },
            filled: 0.0,
            notional: 0.0,
            fees: 0.0,
            status: Status::New,
            armed: false,
            triggered: false,
            acked: false,
            replaces,
        });
        slot
    }

    /// Why a request cannot be accepted, as one line naming the field.
    fn check(&self, r: &Request<'_>) -> Result<(), String> {
        if r.id.is_empty() {
            return Err("client_order_id must not be empty".into());
        }
        if self.by_id.contains_key(r.id) {
            return Err(format!("client_order_id {:?} is already used", r.id));
        }
        Side::parse(r.side).ok_or_else(|| format!("side must be buy or sell, got {:?}", r.side))?;
        let ot = OrderType::parse(r.order_type).ok_or_else(|| {
            format!(
                "type must be market, limit, stop or stop_limit, got {:?}",
                r.order_type
            )
        })?;
        let tif = Tif::parse(r.tif).ok_or_else(|| {
            format!(
                "time_in_force must be day, gtc, ioc, fok, opg or cls, got {:?}",
                r.tif
            )
        })?;
        if !(r.qty.is_finite() && r.qty > 0.0) {
            return Err(format!("qty must be a finite number > 0, got {}", r.qty));
        }
        for (name, value, wanted) in [
            ("limit_price", r.limit, ot.has_limit()),
            ("stop_price", r.stop, ot.has_stop()),
        ] {
            match (value, wanted) {
                (None, true) => {
                    return Err(format!("{name} is required for {} orders", ot.as_str()))
                }
                (Some(_), false) => {
                    return Err(format!("{name} is not allowed on {} orders", ot.as_str()))
                }
                (Some(p), true) if !(p.is_finite() && p > 0.0) => {
                    return Err(format!("{name} must be a finite number > 0, got {p}"))
                }
                _ => {}
            }
        }
        if ot.has_stop() && !matches!(tif, Tif::Day | Tif::Gtc) {
            return Err(format!(
                "{} orders take time_in_force day or gtc, got {}",
                ot.as_str(),
                tif.as_str()
            ));
        }
        if !(r.impact_bps.is_finite() && r.impact_bps >= 0.0) {
            return Err(format!(
                "impact_bps must be a finite number >= 0, got {}",
                r.impact_bps
            ));
        }
        if r.session_close <= r.session_open {
            return Err(format!(
                "session close {} is not after its open {}",
                r.session_close, r.session_open
            ));
        }
        Ok(())
    }

    /// An accepted request starts its life at `ts`: ack, activation, expiry timers; auctions.
    fn start(&mut self, slot: u32, ts: i64) {
        let s = &self.settings;
        let (ack, entry) = (ts + s.ack_latency_ns, ts + s.entry_latency_ns);
        let o = &mut self.orders[slot as usize];
        let tif = o.tif.expect("checked");
        o.active = match tif {
            Tif::Opg => o.session_open,
            _ => entry.max(o.session_open),
        };
        let (active, expires, symbol) = (o.active, o.expires, o.symbol as usize);
        if self.open.len() <= symbol {
            self.open.resize_with(symbol + 1, Vec::new);
        }
        self.open[symbol].push(slot);
        self.schedule(ack, Timer::Ack, slot);
        // opg trades on the first quote/bar of its session, never on the book standing before it
        if tif != Tif::Opg {
            self.schedule(active, Timer::Activate, slot);
        }
        if tif == Tif::Cls {
            self.schedule(expires, Timer::Auction, slot);
        }
        if expires != NEVER {
            self.schedule(expires, Timer::Expire, slot);
        }
        self.advance(ts);
    }

    fn schedule(&mut self, ts: i64, timer: Timer, slot: u32) {
        self.seq += 1;
        self.timers.push(Reverse((ts, timer, self.seq, slot)));
    }

    // ------------------------------------------------------------------------------ time
    /// Fire every timer due at or before `ts`: acks, activations (against the standing quote),
    /// cancels, replaces, close auctions, expiries. Call it once all market data up to `ts` is fed.
    pub fn advance(&mut self, ts: i64) {
        self.fire_until(ts, Timer::Activate);
    }

    /// Fire timers strictly before `ts`, and those at `ts` that come before `last` (inclusive).
    fn fire_until(&mut self, ts: i64, last: Timer) {
        while let Some(&Reverse((t, timer, _, slot))) = self.timers.peek() {
            if t > ts || (t == ts && timer > last) {
                break;
            }
            self.timers.pop();
            self.fire(t, timer, slot);
        }
    }

    fn fire(&mut self, t: i64, timer: Timer, slot: u32) {
        if timer == Timer::Replace {
            return self.finish_replace(t, slot);
        }
        let o = &mut self.orders[slot as usize];
        if !o.status.is_open() {
            return;
        }
        match timer {
            Timer::Ack => self.ack(slot, t),
            Timer::Activate => {
                if !o.armed {
                    o.armed = true;
                    let (symbol, session_open) = (o.symbol as usize, o.session_open);
                    let book = self.books.get(symbol).copied().unwrap_or_default();
                    // the book standing when the order arrives, if it belongs to the order's session
                    if let Some(q) = book.quote.filter(|q| q.ts >= session_open) {
                        self.trade_quote(slot, &q, t);
                    }
                }
            }
            Timer::Cancel => self.close(slot, t, UpdateKind::Canceled, "canceled by request"),
            Timer::Auction => self.close_auction(slot, t),
            Timer::Expire => self.close(slot, t, UpdateKind::Expired, "session closed"),
            Timer::Replace => unreachable!("handled above"),
        }
    }

    fn finish_replace(&mut self, t: i64, slot: u32) {
        let old = self.orders[slot as usize].replaces.expect("replacement");
        if !self.orders[slot as usize].status.is_open() {
            return; // the replacement itself was canceled meanwhile: the old order stays as it is
        }
        let prev = &self.orders[old as usize];
        if !prev.status.is_open() {
            let reason = format!(
                "replace failed: order {:?} was {} before the replace arrived",
                prev.id,
                prev.status.alpaca_name()
            );
            return self.reject(slot, t, reason);
        }
        let leaves = prev.qty - prev.filled;
        let new_id = self.orders[slot as usize].id.clone();
        self.ack(old, t);
        let prev = &mut self.orders[old as usize];
        prev.status = Status::Replaced;
        let filled = prev.filled;
        self.push(
            t,
            old,
            UpdateKind::Replaced,
            0.0,
            0.0,
            0.0,
            filled,
            0.0,
            new_id,
        );
        let o = &mut self.orders[slot as usize];
        if o.qty.is_nan() {
            o.qty = leaves;
        }
        self.start(slot, t);
    }

    // ------------------------------------------------------------------------------ quotes
    /// Trade open orders of `symbol` against one quote (quotes must come in time order).
    pub fn on_quote(&mut self, symbol: u32, q: &Quote) {
        self.fire_until(q.ts, Timer::Expire);
        let book = self.book(symbol);
        book.quote = Some(*q);
        let Some(list) = self.take_open(symbol) else {
            return;
        };
        for &slot in &list {
            let o = &mut self.orders[slot as usize];
            if o.status.is_open() && o.active <= q.ts {
                o.armed = true;
                self.trade_quote(slot, q, q.ts);
            }
        }
        self.put_open(symbol, list);
    }

    /// `on_quote` over columns (rows in time order); lengths must agree.
    pub fn on_quotes(&mut self, symbols: &[u32], q: QuoteColumns<'_>) -> Result<(), String> {
        let lens = [q.bid.len(), q.ask.len(), q.bid_size.len(), q.ask_size.len()];
        check_batch(symbols.len(), q.ts, &lens)?;
        for (i, &symbol) in symbols.iter().enumerate() {
            let quote = Quote {
                ts: q.ts[i],
                bid: q.bid[i],
                ask: q.ask[i],
                bid_size: q.bid_size[i],
                ask_size: q.ask_size[i],
            };
            self.on_quote(symbol, &quote);
        }
        Ok(())
    }

    fn book(&mut self, symbol: u32) -> &mut Book {
        let i = symbol as usize;
        if self.books.len() <= i {
            self.books.resize(i + 1, Book::default());
        }
        &mut self.books[i]
    }

    /// The open orders of `symbol`, taken out while they trade (None when there are none).
    fn take_open(&mut self, symbol: u32) -> Option<Vec<u32>> {
        let list = self.open.get_mut(symbol as usize)?;
        (!list.is_empty()).then(|| std::mem::take(list))
    }

    /// Put back the still-open orders of `symbol` (ahead of any that started meanwhile).
    fn put_open(&mut self, symbol: u32, mut list: Vec<u32>) {
        let orders = &self.orders;
        list.retain(|&s| orders[s as usize].status.is_open());
        let started = std::mem::replace(&mut self.open[symbol as usize], list);
        self.open[symbol as usize].extend(started);
    }

    /// One armed order against one quote, at time `t` (the quote's time, or the order's activation
    /// when it meets the quote standing then).
    fn trade_quote(&mut self, slot: u32, q: &Quote, t: i64) {
        let o = &self.orders[slot as usize];
        let (side, tif) = (o.side.expect("checked"), o.tif.expect("checked"));
        let (touch, size) = q.touch(side);
        let traded = if tif == Tif::Cls || !(touch.is_finite() && touch > 0.0) {
            None // cls trades only in the close auction
        } else {
            self.marketable_touch(slot, touch).map(|p| {
                let avail = if tif == Tif::Opg { f64::INFINITY } else { size };
                (avail, p)
            })
        };
        self.settle(slot, t, traded);
    }

    /// The touch if the order trades at it (stop triggered, limit reached), else None. Marks stops
    /// triggered.
    fn marketable_touch(&mut self, slot: u32, touch: f64) -> Option<f64> {
        let o = &mut self.orders[slot as usize];
        let side = o.side.expect("checked");
        if let (Some(stop), false) = (o.stop, o.triggered) {
            if !side.at_or_better(stop, touch) {
                return None;
            }
            o.triggered = true;
        }
        match o.limit {
            Some(l) if !side.at_or_better(touch, l) => None,
            _ => Some(touch),
        }
    }

    /// Fill `slot` with up to `avail` shares at touch price `touch` at time `t` (None: no trade on
    /// this opportunity); then one-shot orders end.
    fn settle(&mut self, slot: u32, t: i64, traded: Option<(f64, f64)>) {
        let o = &self.orders[slot as usize];
        let tif = o.tif.expect("checked");
        let leaves = o.qty - o.filled;
        if let Some((avail, touch)) = traded {
            // a missing (NaN) size or volume shows nothing to trade against
            let qty = if avail.is_nan() {
                0.0
            } else {
                leaves.min(avail)
            };
            let fok_short = tif == Tif::Fok && qty < leaves - EPS;
            if qty > EPS && !fok_short {
                self.fill(slot, t, qty, touch);
            }
        }
        let o = &self.orders[slot as usize];
        if tif.one_shot() && tif != Tif::Cls && o.status.is_open() {
            let reason = match tif {
                Tif::Fok => "fill or kill: not enough quantity at once",
                Tif::Opg => "opening auction: not marketable",
                _ => "immediate or cancel: remainder canceled",
            };
            self.close(slot, t, UpdateKind::Canceled, reason);
        }
    }

    // ------------------------------------------------------------------------------ bars
    /// Trade open orders of `symbol` against one bar starting at `bar.ts` (bars in time order).
    pub fn on_bar(&mut self, symbol: u32, bar: &Bar) {
        self.fire_until(bar.ts, Timer::Expire);
        self.book(symbol).bar = Some((bar.ts, bar.close));
        let Some(list) = self.take_open(symbol) else {
            return;
        };
        let cap = (self.settings.bar_participation * bar.volume).floor();
        for &slot in &list {
            let o = &mut self.orders[slot as usize];
            if o.status.is_open() && o.active <= bar.ts {
                o.armed = true;
                let traded = self.bar_price(slot, bar).map(|p| {
                    let auction = self.orders[slot as usize].tif == Some(Tif::Opg);
                    (if auction { f64::INFINITY } else { cap }, p)
                });
                self.settle(slot, bar.ts, traded);
            }
        }
        self.put_open(symbol, list);
    }

    /// `on_bar` over columns (rows in time order); then, since every bar of the batch has closed, time
    /// advances to the end of the last one (`ts + every_ns`).
    pub fn on_bars(
        &mut self,
        symbols: &[u32],
        b: BarColumns<'_>,
        every_ns: i64,
    ) -> Result<(), String> {
        let lens = [
            b.open.len(),
            b.high.len(),
            b.low.len(),
            b.close.len(),
            b.volume.len(),
        ];
        check_batch(symbols.len(), b.ts, &lens)?;
        if every_ns <= 0 {
            return Err(format!("every_ns must be > 0, got {every_ns}"));
        }
        for (i, &symbol) in symbols.iter().enumerate() {
            let bar = Bar {
                ts: b.ts[i],
                open: b.open[i],
                high: b.high[i],
                low: b.low[i],
                close: b.close[i],
                volume: b.volume[i],
            };
            self.on_bar(symbol, &bar);
        }
        if let Some(&last) = b.ts.last() {
            self.advance(last.saturating_add(every_ns));
        }
        Ok(())
    }

    /// The touch price an order trades at within `bar`, or None.
    fn bar_price(&mut self, slot: u32, bar: &Bar) -> Option<f64> {
        let o = &mut self.orders[slot as usize];
        let side = o.side.expect("checked");
        if o.tif == Some(Tif::Cls) || !(bar.open.is_finite() && bar.open > 0.0) {
            return None;
        }
        // the best price the bar reached for this side, and the worst (a buyer: low / high)
        let (best, worst) = match side {
            Side::Buy => (bar.low, bar.high),
            Side::Sell => (bar.high, bar.low),
        };
        // from_open: the order was live at the open (not triggered inside the bar)
        let (price, from_open) = match (o.stop, o.triggered) {
            (Some(stop), false) => {
                if side.at_or_better(stop, bar.open) {
                    (bar.open, true) // gap through the stop
                } else if side.at_or_better(stop, worst) {
                    (stop, false)
                } else {
                    return None;
                }
            }
            _ => (bar.open, true),
        };
        o.triggered = o.stop.is_some();
        match o.limit {
            None => Some(price),
            Some(l) if side.at_or_better(price, l) => Some(price),
            Some(l) if from_open && side.at_or_better(best, l) => Some(l),
            Some(_) => None,
        }
    }

    /// The close auction of a cls order: its whole quantity at the last quote's touch (or the last
    /// bar's close) of the session, if marketable; else canceled.
    fn close_auction(&mut self, slot: u32, t: i64) {
        let o = &self.orders[slot as usize];
        let side = o.side.expect("checked");
        let book = self
            .books
            .get(o.symbol as usize)
            .copied()
            .unwrap_or_default();
        let in_session = |ts: i64| ts >= o.session_open && ts < t;
        let touch = match (book.quote, book.bar) {
            (Some(q), _) if in_session(q.ts) => Some(q.touch(side).0),
            (_, Some((bar_ts, close))) if in_session(bar_ts) => Some(close),
            _ => None,
        };
        let price = touch
            .filter(|p| p.is_finite() && *p > 0.0)
            .filter(|&p| o.limit.is_none_or(|l| side.at_or_better(p, l)));
        let leaves = o.qty - o.filled;
        match price {
            Some(p) => self.fill(slot, t, leaves, p),
            None => self.close(
                slot,
                t,
                UpdateKind::Canceled,
                "closing auction: no marketable price",
            ),
        }
    }

    // ------------------------------------------------------------------------------ outcomes
    /// The fill price for a touch: impact against the order, never beyond its limit.
    fn price(o: &Order, touch: f64) -> f64 {
        let side = o.side.expect("checked");
        let p = touch * (1.0 + side.sign() * o.impact_bps / 1e4);
        match (o.limit, side) {
            (Some(l), Side::Buy) => p.min(l),
            (Some(l), Side::Sell) => p.max(l),
            (None, _) => p,
        }
    }

    fn fill(&mut self, slot: u32, t: i64, qty: f64, touch: f64) {
        self.ack(slot, t);
        let fees = self.settings.fees;
        let o = &mut self.orders[slot as usize];
        let side = o.side.expect("checked");
        let price = Self::price(o, touch);
        let fee = fees.fill_fee(side, o.filled, qty, price);
        o.filled += qty;
        o.notional += qty * price;
        o.fees += fee;
        let done = o.filled >= o.qty - EPS;
        if done {
            o.filled = o.qty;
        }
        o.status = if done {
            Status::Filled
        } else {
            Status::PartiallyFilled
        };
        let kind = if done {
            UpdateKind::Fill
        } else {
            UpdateKind::PartialFill
        };
        let (filled, leaves) = (o.filled, o.leaves());
        self.push(
            t,
            slot,
            kind,
            qty,
            price,
            fee,
            filled,
            leaves,
            String::new(),
        );
    }

    fn ack(&mut self, slot: u32, t: i64) {
        let o = &mut self.orders[slot as usize];
        if o.acked {
            return;
        }
        o.acked = true;
        if o.status == Status::New {
            o.status = Status::Accepted;
        }
        let leaves = o.leaves();
        self.push(
            t,
            slot,
            UpdateKind::Accepted,
            0.0,
            0.0,
            0.0,
            0.0,
            leaves,
            String::new(),
        );
    }

    fn close(&mut self, slot: u32, t: i64, kind: UpdateKind, reason: &str) {
        self.ack(slot, t);
        let o = &mut self.orders[slot as usize];
        o.status = match kind {
            UpdateKind::Expired => Status::Expired,
            _ => Status::Canceled,
        };
        let filled = o.filled;
        self.push(t, slot, kind, 0.0, 0.0, 0.0, filled, 0.0, reason.to_owned());
    }

    fn reject(&mut self, slot: u32, t: i64, reason: String) {
        self.orders[slot as usize].status = Status::Rejected;
        self.push(
            t,
            slot,
            UpdateKind::Rejected,
            0.0,
            0.0,
            0.0,
            0.0,
            0.0,
            reason,
        );
    }

    #[allow(clippy::too_many_arguments)]
    fn push(
        &mut self,
        ts: i64,
        order: u32,
        kind: UpdateKind,
        qty: f64,
        price: f64,
        fee: f64,
        filled: f64,
        leaves: f64,
        reason: String,
    ) {
        self.events.push(Event {
            ts,
            order,
            kind,
            qty,
            price,
            fee,
            filled,
            leaves,
            reason,
        });
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn impact_is_the_cost_beyond_half_the_spread_and_never_negative() {
        assert_eq!(impact_bps(7.0, 4.0), 5.0);
        assert_eq!(impact_bps(2.0, 4.0), 0.0);
        assert_eq!(impact_bps(1.0, 4.0), 0.0);
        assert_eq!(impact_bps(f64::NAN, 4.0), 0.0);
    }

    use super::*;

    #[test]
    fn bar_times_take_the_rows_of_the_bar_times_closed_by_now_once() {
        // bar times 0 (rows 0..2), 10 (row 2), 20 (rows 3..6), bars of 5: closed at 5, 15, 25
        let mut times = BarTimes::new(&[0, 0, 10, 20, 20, 20], 5);
        assert_eq!(times.take_closed(4), 0..0);
        assert_eq!(times.take_closed(5), 0..2);
        assert_eq!(times.take_closed(5), 2..2); // taken already
        assert_eq!(times.take_closed(30), 2..6); // two bar times at once
        assert_eq!(times.take_closed(i64::MAX), 6..6);
        assert_eq!(BarTimes::new(&[], 5).take_closed(100), 0..0);
    }

    const MIN: i64 = 60_000_000_000;
    const OPEN: i64 = 1_000 * MIN;
    const CLOSE: i64 = OPEN + 390 * MIN;

    fn settings(entry: i64, ack: i64) -> Settings {
        Settings {
            fees: Fees {
                commission_per_share: 0.0,
                commission_min: 0.0,
                sec_fee_rate: 0.0,
                taf_per_share: 0.0,
                taf_cap: 0.0,
            },
            entry_latency_ns: entry,
            ack_latency_ns: ack,
            bar_participation: 0.1,
        }
    }

    fn req<'a>(
        id: &'a str,
        side: &'a str,
        ot: &'a str,
        tif: &'a str,
        qty: f64,
        ts: i64,
    ) -> Request<'a> {
        Request {
            id,
            symbol: 0,
            side,
            order_type: ot,
            tif,
            qty,
            limit: None,
            stop: None,
            ts,
            impact_bps: 0.0,
            session_open: OPEN,
            session_close: CLOSE,
        }
    }

    fn quote(ts: i64, bid: f64, ask: f64, size: f64) -> Quote {
        Quote {
            ts,
            bid,
            ask,
            bid_size: size,
            ask_size: size,
        }
    }

    fn bar(ts: i64, open: f64, high: f64, low: f64, close: f64, volume: f64) -> Bar {
        Bar {
            ts,
            open,
            high,
            low,
            close,
            volume,
        }
    }

    fn fills(events: &[Event]) -> Vec<(i64, f64, f64)> {
        events
            .iter()
            .filter(|e| matches!(e.kind, UpdateKind::Fill | UpdateKind::PartialFill))
            .map(|e| (e.ts, e.qty, e.price))
            .collect()
    }

    fn kinds(events: &[Event]) -> Vec<&'static str> {
        events.iter().map(|e| e.kind.name()).collect()
    }

    #[test]
    fn filled_shares_sum_each_symbols_fills_with_their_sides() {
        let mut sim = FillSimulator::new(settings(0, 0)).unwrap();
        assert!(sim.filled_shares().is_empty());
        let mut on = |symbol: u32, id: &str, side: &str, qty: f64| {
            let mut r = req(id, side, "market", "day", qty, OPEN);
            r.symbol = symbol;
            sim.submit(&r);
        };
        on(2, "a", "buy", 300.0);
        on(2, "b", "sell", 120.0);
        on(0, "c", "sell", 50.0);
        on(1, "d", "buy", 10.0); // never fills: no quote for symbol 1
        sim.on_quote(2, &quote(OPEN, 9.9, 10.0, 1_000.0));
        sim.on_quote(0, &quote(OPEN, 9.9, 10.0, 40.0)); // 40 of the 50 shares
        assert_eq!(sim.filled_shares(), vec![-40.0, 0.0, 180.0]);
    }

    #[test]
    fn market_order_walks_displayed_size_after_latency() {
        let mut sim = FillSimulator::new(settings(MIN, 0)).unwrap();
        sim.on_quote(0, &quote(OPEN, 9.9, 10.0, 100.0));
        sim.submit(&req("a", "buy", "market", "day", 250.0, OPEN + MIN));
        sim.on_quote(0, &quote(OPEN + MIN, 9.9, 10.1, 100.0)); // before submit + latency
        sim.on_quote(0, &quote(OPEN + 3 * MIN, 10.0, 10.2, 100.0));
        sim.on_quote(0, &quote(OPEN + 4 * MIN, 10.1, 10.3, 100.0));
        let ev = sim.drain();
        // the quote standing at activation (OPEN + 2 min) is the one at OPEN + 1 min
        assert_eq!(
            fills(&ev),
            vec![
                (OPEN + 2 * MIN, 100.0, 10.1),
                (OPEN + 3 * MIN, 100.0, 10.2),
                (OPEN + 4 * MIN, 50.0, 10.3)
            ]
        );
        assert_eq!(
            kinds(&ev),
            ["accepted", "partial_fill", "partial_fill", "fill"]
        );
        assert_eq!(sim.order(0).status, Status::Filled);
    }

    #[test]
    fn limits_fill_at_the_touch_or_better_and_stops_trigger_on_the_touch() {
        let mut sim = FillSimulator::new(settings(0, 0)).unwrap();
        sim.on_quote(0, &quote(OPEN, 9.9, 10.0, 100.0));
        sim.submit(&Request {
            limit: Some(9.95),
            ..req("lim", "buy", "limit", "gtc", 10.0, OPEN)
        });
        sim.submit(&Request {
            stop: Some(9.8),
            ..req("stp", "sell", "stop", "day", 10.0, OPEN)
        });
        sim.on_quote(0, &quote(OPEN + 1, 9.85, 9.96, 100.0)); // nothing: 9.96 > 9.95, 9.85 > 9.8
        sim.on_quote(0, &quote(OPEN + 2, 9.7, 9.95, 100.0)); // limit at the touch; stop gapped through
        let ev = sim.drain();
        assert_eq!(
            fills(&ev),
            vec![(OPEN + 2, 10.0, 9.95), (OPEN + 2, 10.0, 9.7)]
        );
    }

    #[test]
    fn bars_gap_through_stops_and_limits_and_cap_participation() {
        let mut sim = FillSimulator::new(settings(0, 0)).unwrap();
        let stop = |id, s| Request {
            stop: Some(s),
            ..req(id, "buy", "stop", "day", 5.0, OPEN)
        };
        sim.submit(&stop("gap", 10.0));
        sim.submit(&stop("touch", 10.6));
        sim.submit(&Request {
            limit: Some(10.2),
            ..req("lim", "sell", "limit", "day", 5.0, OPEN)
        });
        sim.submit(&req("cap", "buy", "market", "day", 25.0, OPEN));
        sim.on_bar(0, &bar(OPEN, 10.5, 10.7, 10.4, 10.6, 100.0));
        sim.on_bar(0, &bar(OPEN + MIN, 10.6, 10.6, 10.5, 10.5, 155.0));
        let ev = sim.drain();
        let by = |id: u32| -> Vec<(i64, f64, f64)> {
            fills(
                &ev.iter()
                    .filter(|e| e.order == id)
                    .cloned()
                    .collect::<Vec<_>>(),
            )
        };
        assert_eq!(by(0), vec![(OPEN, 5.0, 10.5)]); // opened above the stop: at the open
        assert_eq!(by(1), vec![(OPEN, 5.0, 10.6)]); // range reached the stop: at the stop
        assert_eq!(by(2), vec![(OPEN, 5.0, 10.5)]); // opened above the sell limit: at the open
        assert_eq!(by(3), vec![(OPEN, 10.0, 10.5), (OPEN + MIN, 15.0, 10.6)]); // 10% of volume
    }

    #[test]
    fn stop_limit_waits_when_its_limit_is_beyond_an_intrabar_trigger() {
        let mut sim = FillSimulator::new(settings(0, 0)).unwrap();
        sim.submit(&Request {
            stop: Some(10.5),
            limit: Some(10.3),
            ..req("sl", "buy", "stop_limit", "gtc", 5.0, OPEN)
        });
        sim.on_bar(0, &bar(OPEN, 10.0, 10.6, 9.9, 10.4, 1e6)); // triggers at 10.5 > limit
        assert!(fills(&sim.drain()).is_empty());
        sim.on_bar(0, &bar(OPEN + MIN, 10.4, 10.5, 10.25, 10.3, 1e6)); // limit rule: at 10.3
        assert_eq!(fills(&sim.drain()), vec![(OPEN + MIN, 5.0, 10.3)]);
    }

    #[test]
    fn fees_on_sells_only_commission_minimum_once_per_order() {
        let mut s = settings(0, 0);
        s.fees = Fees {
            commission_per_share: 0.005,
            commission_min: 1.0,
            sec_fee_rate: 27.8e-6,
            taf_per_share: 0.000166,
            taf_cap: 8.30,
        };
        let mut sim = FillSimulator::new(s).unwrap();
        sim.submit(&req("b", "buy", "market", "day", 300.0, OPEN));
        sim.submit(&req("s", "sell", "market", "day", 100_000.0, OPEN));
        sim.on_quote(0, &quote(OPEN, 20.0, 20.0, 100.0));
        sim.on_quote(0, &quote(OPEN + 1, 20.0, 20.0, 1e6));
        let fees: Vec<(u32, f64)> = sim
            .drain()
            .iter()
            .filter(|e| e.qty > 0.0)
            .map(|e| (e.order, e.fee))
            .collect();
        let close = |a: f64, b: f64| (a - b).abs() < 1e-9;
        // buy: 100 shares -> minimum 1.0; then 200 more: 300 x 0.005 = 1.5 owed, 0.5 more
        assert!(close(fees[0].1, 1.0) && close(fees[2].1, 0.5));
        // sell 100 @ 20: commission 1.0 + SEC 2000 x 27.8e-6 + TAF 100 x 0.000166
        assert!(close(fees[1].1, 1.0 + 0.0556 + 0.0166));
        // sell 99,900 @ 20: commission to 500 total, SEC on notional, TAF capped at 8.30
        assert!(close(fees[3].1, 499.0 + 99_900.0 * 20.0 * 27.8e-6 + 8.30));
    }

    #[test]
    fn ioc_fok_and_day_expiry() {
        let mut sim = FillSimulator::new(settings(0, 0)).unwrap();
        sim.on_quote(0, &quote(OPEN, 9.9, 10.0, 100.0));
        sim.submit(&req("ioc", "buy", "market", "ioc", 150.0, OPEN + 1));
        sim.submit(&req("fok", "buy", "market", "fok", 150.0, OPEN + 1));
        sim.submit(&Request {
            limit: Some(5.0),
            ..req("day", "buy", "limit", "day", 1.0, OPEN + 1)
        });
        sim.advance(CLOSE);
        let ev = sim.drain();
        let out: Vec<(u32, &str, f64)> =
            ev.iter().map(|e| (e.order, e.kind.name(), e.qty)).collect();
        assert_eq!(
            out,
            vec![
                (0, "accepted", 0.0),
                (0, "partial_fill", 100.0),
                (0, "canceled", 0.0),
                (1, "accepted", 0.0),
                (1, "canceled", 0.0),
                (2, "accepted", 0.0),
                (2, "expired", 0.0)
            ]
        );
        assert_eq!(ev.last().unwrap().ts, CLOSE);
    }

    #[test]
    fn auctions_trade_the_first_and_last_prices_of_the_session() {
        let mut sim = FillSimulator::new(settings(0, 0)).unwrap();
        sim.submit(&req("opg", "buy", "market", "opg", 500.0, OPEN - MIN));
        sim.submit(&req("cls", "sell", "market", "cls", 500.0, OPEN - MIN));
        sim.on_quote(0, &quote(OPEN - 1, 9.0, 9.1, 10.0)); // pre-market: ignored
        sim.on_quote(0, &quote(OPEN, 10.0, 10.1, 10.0));
        sim.on_quote(0, &quote(CLOSE - 1, 11.0, 11.1, 10.0));
        sim.on_quote(0, &quote(CLOSE + 1, 12.0, 12.1, 10.0));
        assert_eq!(
            fills(&sim.drain()),
            vec![(OPEN, 500.0, 10.1), (CLOSE, 500.0, 11.0)]
        );
    }

    #[test]
    fn cancel_and_replace_race_the_fills() {
        let mut sim = FillSimulator::new(settings(MIN, 0)).unwrap();
        sim.submit(&req("a", "buy", "market", "day", 100.0, OPEN));
        assert!(sim.cancel("a", OPEN + MIN / 2)); // arrives at OPEN + 1.5 min
        sim.on_quote(0, &quote(OPEN + MIN, 9.9, 10.0, 60.0));
        sim.on_quote(0, &quote(OPEN + 2 * MIN, 9.9, 10.0, 60.0));
        let ev = sim.drain();
        assert_eq!(kinds(&ev), ["accepted", "partial_fill", "canceled"]);
        assert!(!sim.cancel("a", OPEN + 3 * MIN) && !sim.cancel("nope", OPEN + 3 * MIN));

        sim.submit(&Request {
            limit: Some(5.0),
            ..req("b", "buy", "limit", "gtc", 100.0, OPEN + 3 * MIN)
        });
        let new = sim
            .replace("b", "b2", OPEN + 4 * MIN, Some(40.0), Some(10.0), None, 0.0)
            .unwrap();
        sim.on_quote(0, &quote(OPEN + 6 * MIN, 9.9, 10.0, 60.0));
        let ev = sim.drain();
        assert_eq!(kinds(&ev), ["accepted", "replaced", "accepted", "fill"]);
        assert_eq!((ev[3].order, ev[3].qty, ev[3].price), (new, 40.0, 10.0));
        // a replace that arrives after the order filled is rejected
        sim.submit(&req("c", "buy", "market", "day", 10.0, OPEN + 7 * MIN));
        sim.replace(
            "c",
            "c2",
            OPEN + 7 * MIN + MIN / 2,
            Some(20.0),
            None,
            None,
            0.0,
        );
        sim.on_quote(0, &quote(OPEN + 8 * MIN, 9.9, 10.0, 60.0));
        sim.advance(OPEN + 9 * MIN);
        let ev = sim.drain();
        assert_eq!(kinds(&ev), ["accepted", "fill", "rejected"]);
    }

    #[test]
    fn invalid_requests_are_rejected_with_the_field_named() {
        let mut sim = FillSimulator::new(settings(0, 0)).unwrap();
        sim.submit(&req("a", "hold", "market", "day", 1.0, OPEN));
        sim.submit(&req("b", "buy", "limit", "day", 1.0, OPEN));
        sim.submit(&req("c", "buy", "market", "day", -1.0, OPEN));
        sim.submit(&req("d", "buy", "market", "day", 1.0, OPEN));
        sim.submit(&req("d", "buy", "market", "day", 1.0, OPEN));
        let reasons: Vec<String> = sim
            .drain()
            .into_iter()
            .filter(|e| e.kind == UpdateKind::Rejected)
            .map(|e| e.reason)
            .collect();
        assert_eq!(reasons.len(), 4);
        assert!(reasons[0].contains("side") && reasons[1].contains("limit_price"));
        assert!(reasons[2].contains("qty") && reasons[3].contains("already used"));
        assert_eq!(sim.order(sim.slot("d").unwrap()).status, Status::Accepted);
    }
}
