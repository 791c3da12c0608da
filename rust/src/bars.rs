//! Ticks into bars: one aggregator for many symbols, time / tick / volume / dollar bars, from trades or
//! quotes, streaming and batch over the same code.
//!
//! Conventions (binding for the Python layer and the tests):
//! - Symbols are small integer ids (`u32`) interned by [`crate::common::SymbolTable`] (or by the batch
//!   caller); per-symbol state lives in a `Vec` indexed by id.
//! - Time bars cover `[start, start + every)` and are labelled by `start`, where
//!   `start = origin + floor((ts - origin) / every) * every` (UTC ns; `origin = 0` aligns to the epoch).
//! - Tick / volume / dollar bars are labelled by the timestamp of their first tick. A volume (dollar) bar
//!   closes right after the trade that brings its volume (notional) to the threshold or beyond; trades are
//!   never split, so a bar can overshoot the threshold by at most one trade.
//! - Bad input is rejected and counted, never aggregated: non-finite or non-positive prices, non-finite or
//!   negative sizes (size 0 is accepted: it counts as a trade and adds no volume); for quotes non-finite or
//!   non-positive bid/ask and crossed quotes (`bid > ask`).
//! - Late ticks: a tick older than the current bar of its symbol (for time bars: before its start; for
//!   count-based bars: before its first tick), or older than the end of the last bar already emitted for that
//!   symbol, is counted as late and dropped. Ticks out of order *inside* the current bar are kept; open and
//!   close follow timestamps (earliest / latest, ties in arrival order), not arrival.
//! - Streaming (`push`, `push_many`) treats every per-symbol out-of-order tick as described above; the batch
//!   functions ([`aggregate_trades`], [`aggregate_quotes`]) accept unsorted input and sort it stably by
//!   `(symbol, ts)` (through an index permutation, the input is not modified) before aggregating, so they
//!   never see late ticks. Batch output is ordered by `(symbol id, ts)`.

use crate::common::FastMap;
use std::fmt;

const NS_PER_SEC: i64 = 1_000_000_000;

/// How bars are closed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Rule {
    /// Time bars `[start, start + every)` aligned to `origin` (ns).
    Time { every: i64, origin: i64 },
    /// Every `n` accepted ticks.
    Ticks(u64),
    /// Every `v` shares (trades only).
    Volume(f64),
    /// Every `d` of notional, price x size (trades only).
    Dollars(f64),
}

/// A rule or an interval that cannot be used, with the reason.
#[derive(Clone, Debug, PartialEq)]
pub struct BarError(pub String);

impl fmt::Display for BarError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BarError {}

impl Rule {
    /// Checks the parameters of a rule: positive, finite.
    pub fn validate(self) -> Result<Self, BarError> {
        let ok = match self {
            Rule::Time { every, .. } => every > 0,
            Rule::Ticks(n) => n > 0,
            Rule::Volume(v) | Rule::Dollars(v) => v.is_finite() && v > 0.0,
        };
        if ok {
            Ok(self)
        } else {
            Err(BarError(format!(
                "bar rule must be positive and finite, got {self:?}"
            )))
        }
    }

    fn is_time(self) -> bool {
        matches!(self, Rule::Time { .. })
    }
}

/// Parses an interval such as `"1s"`, `"5m"`, `"1h"`, `"1d"`, `"250ms"` or `"1h30m"` into nanoseconds.
/// Units: `ns`, `us`, `ms`, `s`, `m` (minutes), `h`, `d` (24 h, UTC).
pub fn parse_every(text: &str) -> Result<i64, BarError> {
    let err = |why: &str| {
        BarError(format!(
            "invalid interval {text:?}: {why} (e.g. \"1s\", \"5m\", \"1h\", \"1d\")"
        ))
    };
    let bytes = text.trim().as_bytes();
    if bytes.is_empty() {
        return Err(err("empty"));
    }
    let mut total: i64 = 0;
    let mut i = 0;
    while i < bytes.len() {
        let digits_start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        if i == digits_start {
            return Err(err("expected a number"));
        }
        let n: i64 = std::str::from_utf8(&bytes[digits_start..i])
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| err("number too large"))?;
        let unit_start = i;
        while i < bytes.len() && bytes[i].is_ascii_alphabetic() {
            i += 1;
        }
        let scale = match &bytes[unit_start..i] {
            b"ns" => 1,
            b"us" => 1_000,
            b"ms" => 1_000_000,
            b"s" => NS_PER_SEC,
            b"m" => 60 * NS_PER_SEC,
            b"h" => 3_600 * NS_PER_SEC,
            b"d" => 86_400 * NS_PER_SEC,
            b"" => return Err(err("missing unit")),
            _ => return Err(err("unknown unit")),
        };
        total = n
            .checked_mul(scale)
            .and_then(|x| total.checked_add(x))
            .ok_or_else(|| err("too large"))?;
    }
    if total <= 0 {
        return Err(err("must be positive"));
    }
    Ok(total)
}

/// Counts kept by an aggregator.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Ticks offered (accepted + late + rejected).
    pub ticks: u64,
    /// Bars emitted.
    pub bars: u64,
    /// Ticks dropped because they were older than their symbol's current bar.
    pub late: u64,
    /// Ticks rejected as invalid (bad price, size, bid/ask).
    pub rejected: u64,
}

impl std::ops::Add for Stats {
    type Output = Stats;

    /// The counts of two parts of one batch, together.
    fn add(self, o: Stats) -> Stats {
        Stats {
            ticks: self.ticks + o.ticks,
            bars: self.bars + o.bars,
            late: self.late + o.late,
            rejected: self.rejected + o.rejected,
        }
    }
}

/// What a bar is made of: trades or quotes. Implemented by [`Trades`] and [`Quotes`].
pub trait Source {
    /// One tick's values besides symbol and timestamp.
    type Tick: Copy;
    /// Running state of one bar.
    type Acc: Copy + Default;
    /// Column buffers of emitted bars.
    type Bars: Default + BarColumns + Send;
    /// Whether the rule can apply to this source.
    fn supports(rule: Rule) -> bool;
    fn valid(t: Self::Tick) -> bool;
    fn open(acc: &mut Self::Acc, ts: i64, t: Self::Tick);
    fn add(acc: &mut Self::Acc, ts: i64, t: Self::Tick);
    /// Number of ticks, and the amount that volume/dollar rules measure.
    fn count(acc: &Self::Acc) -> u64;
    fn amount(acc: &Self::Acc, rule: Rule) -> f64;
    /// Timestamp of the latest tick in the bar.
    fn close_ts(acc: &Self::Acc) -> i64;
    fn emit(out: &mut Self::Bars, symbol: u32, start: i64, acc: &Self::Acc);
}

/// Operations common to bar column buffers.
pub trait BarColumns {
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    fn clear(&mut self);
    /// Reorders every column by `perm` (new row `i` = old row `perm[i]`).
    fn permute(&mut self, perm: &[usize]);
    fn symbols(&self) -> &[u32];
    /// Appends `other`'s rows, adding `symbol_offset` to their symbol ids.
    fn append(&mut self, other: Self, symbol_offset: u32);
    /// The columns after `symbol`, in schema order (`ts` first).
    fn columns(&self) -> Vec<ColumnRef<'_>>;
    /// Moves the columns after `symbol` out, in schema order; they are left empty (`symbol` is not).
    fn take_columns(&mut self) -> Vec<Column>;
}

/// A column of a bar batch, so that bindings treat every kind of bar alike.
pub enum Column {
    F64(Vec<f64>),
    I64(Vec<i64>),
}

/// A borrowed column of a bar batch.
pub enum ColumnRef<'a> {
    F64(&'a [f64]),
    I64(&'a [i64]),
}

impl From<Vec<f64>> for Column {
    fn from(v: Vec<f64>) -> Self {
        Column::F64(v)
    }
}

impl From<Vec<i64>> for Column {
    fn from(v: Vec<i64>) -> Self {
        Column::I64(v)
    }
}

impl<'a> From<&'a Vec<f64>> for ColumnRef<'a> {
    fn from(v: &'a Vec<f64>) -> Self {
        ColumnRef::F64(v)
    }
}

impl<'a> From<&'a Vec<i64>> for ColumnRef<'a> {
    fn from(v: &'a Vec<i64>) -> Self {
        ColumnRef::I64(v)
    }
}

fn gather<T: Copy>(v: &mut Vec<T>, perm: &[usize]) {
    let out: Vec<T> = perm.iter().map(|&i| v[i]).collect();
    *v = out;
}

/// A bar column buffer: `symbol` ids plus the listed columns, with `BarColumns` over all of them.
macro_rules! bar_columns {
    ($(#[$doc:meta])* $name:ident { $($field:ident: $ty:ty),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Clone, Debug, Default, PartialEq)]
        pub struct $name {
            pub symbol: Vec<u32>,
            $(pub $field: Vec<$ty>,)+
        }

        impl BarColumns for $name {
            fn len(&self) -> usize {
                self.symbol.len()
            }
            fn clear(&mut self) {
                // Keeps the capacity: a streaming aggregator reuses its output buffers.
                self.symbol.clear();
                $(self.$field.clear();)+
            }
            fn permute(&mut self, p: &[usize]) {
                gather(&mut self.symbol, p);
                $(gather(&mut self.$field, p);)+
            }
            fn symbols(&self) -> &[u32] {
                &self.symbol
            }
            fn append(&mut self, o: Self, symbol_offset: u32) {
                self.symbol.extend(o.symbol.iter().map(|&s| s + symbol_offset));
                $(self.$field.extend(o.$field);)+
            }
            fn columns(&self) -> Vec<ColumnRef<'_>> {
                vec![$(ColumnRef::from(&self.$field)),+]
            }
            fn take_columns(&mut self) -> Vec<Column> {
                vec![$(Column::from(std::mem::take(&mut self.$field))),+]
            }
        }
    };
}

bar_columns! {
    /// Trade bars: symbol, ts, open, high, low, close, volume, vwap, trades.
    TradeBars { ts: i64, open: f64, high: f64, low: f64, close: f64, volume: f64, vwap: f64, trades: i64 }
}

bar_columns! {
    /// Quote bars: symbol, ts, open, high, low, close (of the mid), last bid, last ask, mean and last
    /// spread in basis points of the mid, quote count.
    QuoteBars {
        ts: i64, open: f64, high: f64, low: f64, close: f64, bid: f64, ask: f64,
        spread_bps_mean: f64, spread_bps_last: f64, quotes: i64,
    }
}

/// Trade ticks: `(price, size)`.
pub struct Trades;

/// Running state of a trade bar.
#[derive(Clone, Copy, Debug, Default)]
pub struct TradeAcc {
    open_ts: i64,
    close_ts: i64,
    open: f64,
    high: f64,
    low: f64,
    close: f64,
    volume: f64,
    notional: f64,
    count: u64,
}

impl Source for Trades {
    type Tick = (f64, f64);
    type Acc = TradeAcc;
    type Bars = TradeBars;

    fn supports(_rule: Rule) -> bool {
        true
    }

    #[inline]
    fn valid((price, size): (f64, f64)) -> bool {
        // `price > 0.0` is false for NaN; `size >= 0.0` is false for NaN.
        price > 0.0 && price.is_finite() && size >= 0.0 && size.is_finite()
    }

    #[inline]
    fn open(a: &mut TradeAcc, ts: i64, (price, size): (f64, f64)) {
        *a = TradeAcc {
            open_ts: ts,
            close_ts: ts,
            open: price,
            high: price,
            low: price,
            close: price,
            volume: size,
            notional: price * size,
            count: 1,
        };
    }

    #[inline]
    fn add(a: &mut TradeAcc, ts: i64, (price, size): (f64, f64)) {
        if ts < a.open_ts {
            a.open_ts = ts;
            a.open = price;
        }
        if ts >= a.close_ts {
            a.close_ts = ts;
            a.close = price;
        }
        a.high = a.high.max(price);
        a.low = a.low.min(price);
        a.volume += size;
        a.notional += price * size;
        a.count += 1;
    }

    #[inline]
    fn count(a: &TradeAcc) -> u64 {
        a.count
    }

    #[inline]
    fn amount(a: &TradeAcc, rule: Rule) -> f64 {
        match rule {
            Rule::Dollars(_) => a.notional,
            _ => a.volume,
        }
    }

    #[inline]
    fn close_ts(a: &TradeAcc) -> i64 {
        a.close_ts
    }

    fn emit(out: &mut TradeBars, symbol: u32, start: i64, a: &TradeAcc) {
        out.symbol.push(symbol);
        out.ts.push(start);
        out.open.push(a.open);
        out.high.push(a.high);
        out.low.push(a.low);
        out.close.push(a.close);
        out.volume.push(a.volume);
        // 0/0 = NaN when every trade had size 0: no volume-weighted price exists.
        out.vwap.push(a.notional / a.volume);
        out.trades.push(a.count as i64);
    }
}

/// Quote ticks: `(bid, ask)`.
pub struct Quotes;

/// Running state of a quote bar.
#[derive(Clone, Copy, Debug, Default)]
pub struct QuoteAcc {
    open_ts: i64,
    close_ts: i64,
    open: f64,
    high: f64,
    low: f64,
    close: f64,
    bid: f64,
    ask: f64,
    spread_sum: f64,
    spread_last: f64,
    count: u64,
}

#[inline]
fn mid_spread(bid: f64, ask: f64) -> (f64, f64) {
    let mid = 0.5 * (bid + ask);
    (mid, (ask - bid) / mid * 1e4)
}

impl Source for Quotes {
    type Tick = (f64, f64);
    type Acc = QuoteAcc;
    type Bars = QuoteBars;

    fn supports(rule: Rule) -> bool {
        matches!(rule, Rule::Time { .. } | Rule::Ticks(_))
    }

    #[inline]
    fn valid((bid, ask): (f64, f64)) -> bool {
        bid > 0.0 && ask.is_finite() && bid <= ask
    }

    #[inline]
    fn open(a: &mut QuoteAcc, ts: i64, (bid, ask): (f64, f64)) {
        let (mid, spread) = mid_spread(bid, ask);
        *a = QuoteAcc {
            open_ts: ts,
            close_ts: ts,
            open: mid,
            high: mid,
            low: mid,
            close: mid,
            bid,
            ask,
            spread_sum: spread,
            spread_last: spread,
            count: 1,
        };
    }

    #[inline]
    fn add(a: &mut QuoteAcc, ts: i64, (bid, ask): (f64, f64)) {
        let (mid, spread) = mid_spread(bid, ask);
        if ts < a.open_ts {
            a.open_ts = ts;
            a.open = mid;
        }
        if ts >= a.close_ts {
            a.close_ts = ts;
            a.close = mid;
            a.bid = bid;
            a.ask = ask;
            a.spread_last = spread;
        }
        a.high = a.high.max(mid);
        a.low = a.low.min(mid);
        a.spread_sum += spread;
        a.count += 1;
    }

    #[inline]
    fn count(a: &QuoteAcc) -> u64 {
        a.count
    }

    fn amount(_a: &QuoteAcc, _rule: Rule) -> f64 {
        // Quotes carry no traded volume; `supports` keeps volume/dollar rules away.
        0.0
    }

    #[inline]
    fn close_ts(a: &QuoteAcc) -> i64 {
        a.close_ts
    }

    fn emit(out: &mut QuoteBars, symbol: u32, start: i64, a: &QuoteAcc) {
        out.symbol.push(symbol);
        out.ts.push(start);
        out.open.push(a.open);
        out.high.push(a.high);
        out.low.push(a.low);
        out.close.push(a.close);
        out.bid.push(a.bid);
        out.ask.push(a.ask);
        out.spread_bps_mean.push(a.spread_sum / a.count as f64);
        out.spread_bps_last.push(a.spread_last);
        out.quotes.push(a.count as i64);
    }
}

/// The bar a tick opens: `(label, exclusive end)`; count-based bars have no end.
#[inline]
fn bucket(rule: Rule, ts: i64) -> (i64, i64) {
    match rule {
        Rule::Time { every, origin } => {
            let start = origin.wrapping_add(
                ts.wrapping_sub(origin)
                    .div_euclid(every)
                    .wrapping_mul(every),
            );
            (start, start.saturating_add(every))
        }
        _ => (ts, i64::MAX),
    }
}

/// Per-symbol state.
#[derive(Clone, Copy, Debug)]
struct Slot<A> {
    /// A bar is open.
    active: bool,
    /// Ticks with `ts < floor` are late.
    floor: i64,
    /// Label of the open bar (time bars: interval start; others: first tick's ts).
    start: i64,
    /// End of the open time bar (exclusive); unused for count-based rules.
    end: i64,
    acc: A,
}

impl<A: Default> Default for Slot<A> {
    fn default() -> Self {
        Slot {
            active: false,
            floor: i64::MIN,
            start: 0,
            end: 0,
            acc: A::default(),
        }
    }
}

/// Streaming bar aggregator over many symbols.
pub struct Aggregator<S: Source> {
    rule: Rule,
    slots: Vec<Slot<S::Acc>>,
    stats: Stats,
}

impl<S: Source> Aggregator<S> {
    /// A new aggregator; fails if the rule is invalid or does not apply to the source.
    pub fn new(rule: Rule) -> Result<Self, BarError> {
        let rule = rule.validate()?;
        if !S::supports(rule) {
            return Err(BarError(format!(
                "{rule:?} bars cannot be built from quotes"
            )));
        }
        Ok(Aggregator {
            rule,
            slots: Vec::new(),
            stats: Stats::default(),
        })
    }

    pub fn rule(&self) -> Rule {
        self.rule
    }

    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Makes room for symbol ids `< n` (done implicitly by `push`).
    pub fn reserve_symbols(&mut self, n: usize) {
        if self.slots.len() < n {
            self.slots.resize(n, Slot::default());
        }
    }

    #[inline]
    fn close_slot(
        slot: &mut Slot<S::Acc>,
        symbol: u32,
        rule: Rule,
        stats: &mut Stats,
        out: &mut S::Bars,
    ) {
        S::emit(out, symbol, slot.start, &slot.acc);
        stats.bars += 1;
        slot.active = false;
        slot.floor = match rule {
            Rule::Time { .. } => slot.end,
            _ => slot.floor.max(S::close_ts(&slot.acc)),
        };
    }

    /// Adds one tick; bars it completes are appended to `out`. Returns whether the tick was accepted.
    #[inline]
    pub fn push(&mut self, symbol: u32, ts: i64, tick: S::Tick, out: &mut S::Bars) -> bool {
        let mut stats = self.stats;
        let accepted = self.push_counted(&mut stats, symbol, ts, tick, out);
        self.stats = stats;
        accepted
    }

    /// `push` counting into `stats`: loops pass a local copy, which stays in registers.
    #[inline(always)]
    fn push_counted(
        &mut self,
        stats: &mut Stats,
        symbol: u32,
        ts: i64,
        tick: S::Tick,
        out: &mut S::Bars,
    ) -> bool {
        let idx = symbol as usize;
        if idx >= self.slots.len() {
            self.reserve_symbols(idx + 1);
        }
        Self::step(
            self.rule,
            &mut self.slots[idx],
            stats,
            symbol,
            ts,
            tick,
            out,
        )
    }

    /// Adds consecutive ticks of one symbol, in time order, keeping the bar state in locals (registers)
    /// for the whole run: the batch fast path. Stops and returns `false` at the first tick older than
    /// the one before it (nothing of the run is pushed from there on).
    fn push_sorted_run(
        &mut self,
        symbol: u32,
        ts: &[i64],
        a: &[f64],
        b: &[f64],
        out: &mut S::Bars,
    ) -> bool
    where
        S: Source<Tick = (f64, f64)>,
    {
        let idx = symbol as usize;
        if idx >= self.slots.len() {
            self.reserve_symbols(idx + 1);
        }
        let rule = self.rule;
        let mut slot = self.slots[idx];
        let mut stats = self.stats;
        let mut prev = i64::MIN;
        let mut sorted = true;
        for ((&t, &x), &y) in ts.iter().zip(a).zip(b) {
            if t < prev {
                sorted = false;
                break;
            }
            prev = t;
            Self::step(rule, &mut slot, &mut stats, symbol, t, (x, y), out);
        }
        self.slots[idx] = slot;
        self.stats = stats;
        sorted
    }

    #[inline(always)]
    fn step(
        rule: Rule,
        slot: &mut Slot<S::Acc>,
        stats: &mut Stats,
        symbol: u32,
        ts: i64,
        tick: S::Tick,
        out: &mut S::Bars,
    ) -> bool {
        stats.ticks += 1;
        if !S::valid(tick) {
            stats.rejected += 1;
            return false;
        }
        let is_time = rule.is_time();
        if ts < slot.floor {
            stats.late += 1;
            return false;
        }
        if slot.active {
            if !is_time || ts < slot.end {
                S::add(&mut slot.acc, ts, tick);
                if !is_time && Self::count_rule_full(rule, &slot.acc) {
                    Self::close_slot(slot, symbol, rule, stats, out);
                }
                return true;
            }
            Self::close_slot(slot, symbol, rule, stats, out);
        }
        // Only a tick that opens a bar pays for the bucket division.
        let (start, end) = bucket(rule, ts);
        slot.active = true;
        slot.start = start;
        slot.end = end;
        slot.floor = start;
        S::open(&mut slot.acc, ts, tick);
        if !is_time && Self::count_rule_full(rule, &slot.acc) {
            Self::close_slot(slot, symbol, rule, stats, out);
        }
        true
    }

    #[inline]
    fn count_rule_full(rule: Rule, acc: &S::Acc) -> bool {
        match rule {
            Rule::Time { .. } => false,
            Rule::Ticks(n) => S::count(acc) >= n,
            Rule::Volume(v) | Rule::Dollars(v) => S::amount(acc, rule) >= v,
        }
    }

    /// Adds a batch of ticks in order (same as calling `push` for each). Ids must be parallel to `ts`.
    pub fn push_many(
        &mut self,
        symbols: &[u32],
        ts: &[i64],
        ticks: impl Iterator<Item = S::Tick>,
        out: &mut S::Bars,
    ) {
        let mut stats = self.stats;
        for ((&sym, &t), tick) in symbols.iter().zip(ts).zip(ticks) {
            self.push_counted(&mut stats, sym, t, tick, out);
        }
        self.stats = stats;
    }

    /// Emits every time bar whose interval has ended (`end <= now`), in symbol-id order. Count-based bars
    /// have no end and are left open. Ticks that arrive later for a flushed interval are late.
    pub fn flush(&mut self, now: i64, out: &mut S::Bars) {
        if !self.rule.is_time() {
            return;
        }
        let rule = self.rule;
        for (i, slot) in self.slots.iter_mut().enumerate() {
            if slot.active && slot.end <= now {
                Self::close_slot(slot, i as u32, rule, &mut self.stats, out);
            }
        }
    }

    /// Emits the open bar of one symbol, complete or not (its stream has ended).
    pub fn close_symbol(&mut self, symbol: u32, out: &mut S::Bars) {
        let rule = self.rule;
        if let Some(slot) = self.slots.get_mut(symbol as usize) {
            if slot.active {
                Self::close_slot(slot, symbol, rule, &mut self.stats, out);
            }
        }
    }

    /// Emits every open bar, complete or not (the partial bars at the end of a stream), in symbol-id order.
    pub fn close(&mut self, out: &mut S::Bars) {
        let rule = self.rule;
        for (i, slot) in self.slots.iter_mut().enumerate() {
            if slot.active {
                Self::close_slot(slot, i as u32, rule, &mut self.stats, out);
            }
        }
    }
}

/// Interns a column by two independent 64-bit hashes of each value into dense codes in first-seen order.
/// Two different values are merged only if both hashes collide; a value whose first hash matches an
/// earlier value's with a different second hash is reported as an error (the caller then falls back to
/// exact codes).
pub struct HashInterner {
    map: FastMap<u64, u32>,
    /// Direct-mapped cache in front of the map, indexed by the low bits of the (already random) first
    /// hash: `(hash, code + 1)`, 0 meaning empty. Interleaved symbols mostly hit it.
    cache: Vec<(u64, u32)>,
    /// The previous row's hashes and code + 1 (0: none yet).
    prev: (u64, u64, u32),
    second: Vec<u64>,
    first_rows: Vec<usize>,
}

const INTERN_CACHE: usize = 1024;

impl Default for HashInterner {
    fn default() -> Self {
        HashInterner {
            map: FastMap::default(),
            cache: vec![(0, 0); INTERN_CACHE],
            prev: (0, 0, 0),
            second: Vec::new(),
            first_rows: Vec::new(),
        }
    }
}

impl HashInterner {
    /// The code of row `row` with hashes `(a, b)`.
    #[inline]
    pub fn code(&mut self, row: usize, a: u64, b: u64) -> Result<u32, BarError> {
        // Grouped input repeats the previous row's symbol: both hashes equal, nothing else to check.
        if (a, b) == (self.prev.0, self.prev.1) && self.prev.2 != 0 {
            return Ok(self.prev.2 - 1);
        }
        let entry = &mut self.cache[a as usize % INTERN_CACHE];
        let code = if entry.0 == a && entry.1 != 0 {
            entry.1 - 1
        } else {
            let next = self.second.len() as u32;
            let c = *self.map.entry(a).or_insert(next);
            if c == next {
                self.second.push(b);
                self.first_rows.push(row);
            }
            *entry = (a, c + 1);
            c
        };
        if self.second[code as usize] != b {
            return Err(BarError("64-bit hash collision between two symbols".into()));
        }
        self.prev = (a, b, code + 1);
        Ok(code)
    }

    /// Number of distinct values seen.
    pub fn len(&self) -> usize {
        self.second.len()
    }

    pub fn is_empty(&self) -> bool {
        self.second.is_empty()
    }

    /// Row of the first occurrence of each code.
    pub fn into_first_rows(self) -> Vec<usize> {
        self.first_rows
    }
}

fn check_lengths(n: usize, other: &[(&str, usize)]) -> Result<(), BarError> {
    match other.iter().find(|(_, len)| *len != n) {
        Some((name, len)) => Err(BarError(format!(
            "column {name} has {len} rows, expected {n}"
        ))),
        None => Ok(()),
    }
}

/// Dense codes of a column from two hashes of each value (see [`HashInterner`]), and the first row of
/// each code.
pub fn codes_from_hashes(h1: &[u64], h2: &[u64]) -> Result<(Vec<u32>, Vec<usize>), BarError> {
    check_lengths(h1.len(), &[("h2", h2.len())])?;
    let mut interner = HashInterner::default();
    let codes = h1
        .iter()
        .zip(h2)
        .enumerate()
        .map(|(i, (&a, &b))| interner.code(i, a, b))
        .collect::<Result<Vec<u32>, BarError>>()?;
    Ok((codes, interner.into_first_rows()))
}

/// Aggregates whole columns at once: `symbols` are ids `< n_symbols`, `a`/`b` are price/size for trades
/// or bid/ask for quotes. Unsorted input is sorted stably by `(symbol, ts)` first (through an index
/// permutation), so nothing is late; invalid ticks are rejected and counted. All bars are emitted, the last
/// one of each symbol being partial. Output is ordered by `(symbol, ts)`. Gives the same bars as streaming
/// the sorted ticks and calling `close`.
pub fn aggregate<S: Source<Tick = (f64, f64)>>(
    rule: Rule,
    symbols: &[u32],
    n_symbols: usize,
    ts: &[i64],
    a: &[f64],
    b: &[f64],
) -> Result<(S::Bars, Stats), BarError> {
    let n = ts.len();
    check_lengths(
        n,
        &[("symbol", symbols.len()), ("a", a.len()), ("b", b.len())],
    )?;
    if let Some(&bad) = symbols.iter().find(|&&s| s as usize >= n_symbols) {
        return Err(BarError(format!(
            "symbol code {bad} out of range (n_symbols = {n_symbols})"
        )));
    }
    let mut agg = Aggregator::<S>::new(rule)?;
    agg.reserve_symbols(n_symbols);
    let mut out = S::Bars::default();
    let sorted = push_rows(&mut agg, &mut out, ts, a, b, |i| Ok(symbols[i]))?;
    if !sorted {
        // Start again in (symbol, ts) order.
        agg = Aggregator::<S>::new(rule)?;
        out = S::Bars::default();
        let mut perm: Vec<u32> = (0..n as u32).collect();
        perm.sort_by_key(|&i| (symbols[i as usize], ts[i as usize]));
        for &i in &perm {
            let i = i as usize;
            agg.push(symbols[i], ts[i], (a[i], b[i]), &mut out);
        }
    }
    agg.close(&mut out);
    sort_by_symbol(&mut out, n_symbols);
    Ok((out, agg.stats()))
}

/// Bars of a batch whose symbols were given as two hashes per row (see [`aggregate_hashed`]).
pub struct HashedBars<B> {
    /// Bars ordered by `(symbol code, ts)`; codes in first-seen order.
    pub bars: B,
    /// Row of the first occurrence of each symbol code.
    pub first_rows: Vec<usize>,
    pub stats: Stats,
}

/// [`aggregate`] with the symbol interning fused into the same pass: symbols are given by two independent
/// hashes per row (see [`HashInterner`]). Input in time order per symbol takes one pass; otherwise the
/// work is redone through [`codes_from_hashes`] and the sorting path of [`aggregate`]. Large input grouped
/// by symbol is split at a symbol boundary and aggregated on two threads.
pub fn aggregate_hashed<S: Source<Tick = (f64, f64)>>(
    rule: Rule,
    h1: &[u64],
    h2: &[u64],
    ts: &[i64],
    a: &[f64],
    b: &[f64],
) -> Result<HashedBars<S::Bars>, BarError> {
    let n = ts.len();
    check_lengths(
        n,
        &[
            ("h1", h1.len()),
            ("h2", h2.len()),
            ("a", a.len()),
            ("b", b.len()),
        ],
    )?;
    Aggregator::<S>::new(rule)?; // a bad rule is an error before any work
    if n >= PARALLEL_MIN_ROWS && grouped(h1, h2) {
        if let Some(bars) = aggregate_hashed_halves::<S>(rule, h1, h2, ts, a, b) {
            return Ok(bars);
        }
    }
    if let Some(pass) = hashed_pass::<S>(rule, h1, h2, ts, a, b)? {
        return Ok(pass.into_bars());
    }
    // Not in time order per symbol: intern everything, then take the sorting path.
    let (codes, first_rows) = codes_from_hashes(h1, h2)?;
    let (bars, stats) = aggregate::<S>(rule, &codes, first_rows.len(), ts, a, b)?;
    Ok(HashedBars {
        bars,
        first_rows,
        stats,
    })
}

/// [`aggregate`] for rows grouped by symbol: symbol `k` is the `k`-th run of rows, `run_lengths[k]` long,
/// each symbol in one run only (the caller checks). Reads no per-row symbol data, and closes each symbol's
/// last bar at the end of its run, so bars come out ordered by `(run, ts)`. Runs not in time order are
/// handled by the sorting path of [`aggregate`]. Large input is split onto two threads (see
/// `split_row`); the result is the same as on one thread.
pub fn aggregate_runs<S: Source<Tick = (f64, f64)>>(
    rule: Rule,
    run_lengths: &[u64],
    ts: &[i64],
    a: &[f64],
    b: &[f64],
) -> Result<(S::Bars, Stats), BarError> {
    aggregate_runs_split::<S>(rule, run_lengths, ts, a, b, PARALLEL_MIN_ROWS)
}

/// [`aggregate_runs`], on two threads from `parallel_min_rows` rows.
fn aggregate_runs_split<S: Source<Tick = (f64, f64)>>(
    rule: Rule,
    run_lengths: &[u64],
    ts: &[i64],
    a: &[f64],
    b: &[f64],
    parallel_min_rows: usize,
) -> Result<(S::Bars, Stats), BarError> {
    let n = ts.len();
    check_lengths(n, &[("a", a.len()), ("b", b.len())])?;
    let mut starts = Vec::with_capacity(run_lengths.len() + 1);
    starts.push(0usize);
    for &len in run_lengths {
        starts.push(starts[starts.len() - 1] + len as usize);
    }
    if starts[run_lengths.len()] != n {
        return Err(BarError(format!(
            "run lengths add up to {}, expected {n} rows",
            starts[run_lengths.len()]
        )));
    }
    Aggregator::<S>::new(rule)?; // a bad rule is an error before any work
                                 // Rows lo..hi: the part of each run inside, its bars closed at the end of the part.
    let rows = |lo: usize, hi: usize| -> Option<(S::Bars, Stats)> {
        let mut agg = Aggregator::<S>::new(rule).ok()?;
        let mut out = S::Bars::default();
        let first = starts.partition_point(|&s| s <= lo) - 1;
        for k in first..run_lengths.len() {
            let (i, j) = (starts[k].max(lo), starts[k + 1].min(hi));
            if i >= hi {
                break;
            }
            if !agg.push_sorted_run(k as u32, &ts[i..j], &a[i..j], &b[i..j], &mut out) {
                return None;
            }
            agg.close_symbol(k as u32, &mut out);
        }
        Some((out, agg.stats()))
    };
    let k = run_lengths.len();
    let mid = split_row(rule, &starts, ts);
    let done = if n >= parallel_min_rows && 0 < mid && mid < n {
        let (left, right) = std::thread::scope(|scope| {
            let right = scope.spawn(|| rows(mid, n));
            (
                rows(0, mid),
                right.join().expect("bar worker thread panicked"),
            )
        });
        left.zip(right).map(|((mut bars, l), (rbars, r))| {
            bars.append(rbars, 0);
            (bars, l + r)
        })
    } else {
        rows(0, n)
    };
    match done {
        Some(result) => Ok(result),
        None => {
            let codes: Vec<u32> = run_lengths
                .iter()
                .enumerate()
                .flat_map(|(k, &len)| std::iter::repeat_n(k as u32, len as usize))
                .collect();
            aggregate::<S>(rule, &codes, k, ts, a, b)
        }
    }
}

/// Below this many rows one thread does the whole batch.
const PARALLEL_MIN_ROWS: usize = 1 << 20;

/// Where to split rows grouped in runs (`starts`: first row of each run, then the row count) into two
/// halves that give, aggregated apart and concatenated, the bars of the whole: the first run boundary from
/// the middle on, or for time bars the first row from the middle on that opens a later interval than the
/// row before it (it closes that bar on one thread too; and a run not in time order cannot pass there
/// unnoticed, since its ts goes up). `0` or the row count when there is no such row before the end.
fn split_row(rule: Rule, starts: &[usize], ts: &[i64]) -> usize {
    let n = ts.len();
    let half = n / 2;
    let boundary = starts[starts.partition_point(|&s| s < half).min(starts.len() - 1)];
    if !rule.is_time() || half == 0 {
        return boundary;
    }
    (half..boundary)
        .find(|&i| bucket(rule, ts[i]).0 > bucket(rule, ts[i - 1]).0)
        .unwrap_or(boundary)
}

/// The string an Arrow string view (16 bytes: length, then the string inline when it has at most 12
/// bytes) holds, as one comparable key with the unused bytes cleared; None for a longer string, which the
/// view only points to.
#[inline]
fn inline_view_key(lo: u64, hi: u64) -> Option<u128> {
    let len = lo & 0xffff_ffff;
    if len > 12 {
        return None;
    }
    let key = u128::from(lo) | (u128::from(hi) << 64);
    let bits = 32 + 8 * len as u32;
    Some(if bits == 128 {
        key
    } else {
        key & ((1u128 << bits) - 1)
    })
}

/// Run starts in `views[2 * lo..2 * hi]` (rows lo..hi) with each run's key; None once a symbol has two
/// runs or is not inline. Raw views are compared first: equal views are equal strings.
fn view_run_starts(views: &[u64], lo: usize, hi: usize) -> Option<Vec<(usize, u128)>> {
    let mut out: Vec<(usize, u128)> = Vec::new();
    let mut seen: FastMap<u128, ()> = FastMap::default();
    let mut prev = (u64::MAX, u64::MAX);
    let mut prev_key = None;
    for row in lo..hi {
        let raw = (views[2 * row], views[2 * row + 1]);
        if raw == prev {
            continue;
        }
        prev = raw;
        let key = inline_view_key(raw.0, raw.1)?;
        if prev_key == Some(key) {
            continue;
        }
        prev_key = Some(key);
        if seen.insert(key, ()).is_some() {
            return None;
        }
        out.push((row, key));
    }
    Some(out)
}

/// Run lengths and the first row of each run.
pub type Runs = (Vec<u64>, Vec<usize>);

/// Runs of equal values in a string column given as its Arrow string views (`views`: two u64 per row, as
/// the view's 16 bytes read little-endian). `Ok(Some((run lengths, first row of each run)))` when every
/// value's rows are contiguous; `Ok(None)` when a value comes back after another or is longer than 12 bytes
/// (not inline in its view): the caller then reads the strings another way. Large columns are scanned on
/// two threads.
pub fn view_runs(views: &[u64]) -> Result<Option<Runs>, BarError> {
    if !views.len().is_multiple_of(2) {
        return Err(BarError(format!(
            "string views must be two u64 per row, got {} u64",
            views.len()
        )));
    }
    let n = views.len() / 2;
    let runs = if n >= PARALLEL_MIN_ROWS {
        let mid = n / 2;
        let (left, right) = std::thread::scope(|scope| {
            let right = scope.spawn(|| view_run_starts(views, mid, n));
            (
                view_run_starts(views, 0, mid),
                right.join().expect("view scan thread panicked"),
            )
        });
        let (Some(mut left), Some(right)) = (left, right) else {
            return Ok(None);
        };
        let mut seen: FastMap<u128, ()> = left.iter().map(|&(_, key)| (key, ())).collect();
        let continues = left.last().map(|l| l.1) == right.first().map(|r| r.1);
        for &(row, key) in &right[usize::from(continues)..] {
            if seen.insert(key, ()).is_some() {
                return Ok(None);
            }
            left.push((row, key));
        }
        left
    } else {
        match view_run_starts(views, 0, n) {
            Some(runs) => runs,
            None => return Ok(None),
        }
    };
    let first_rows: Vec<usize> = runs.iter().map(|r| r.0).collect();
    let lengths = first_rows
        .iter()
        .zip(first_rows.iter().skip(1).chain(std::iter::once(&n)))
        .map(|(&i, &j)| (j - i) as u64)
        .collect();
    Ok(Some((lengths, first_rows)))
}

/// Whether the first rows come in long runs of one symbol (input grouped by symbol).
fn grouped(h1: &[u64], h2: &[u64]) -> bool {
    let probe = h1.len().min(4096);
    let changes = (1..probe)
        .filter(|&i| (h1[i], h2[i]) != (h1[i - 1], h2[i - 1]))
        .count();
    changes * 16 < probe
}

/// Two halves split at a symbol boundary, on two threads. None if a half is not in time order per symbol,
/// a symbol appears in both halves, or the hashes collide (the caller then takes the one-thread path,
/// which reports collisions).
fn aggregate_hashed_halves<S: Source<Tick = (f64, f64)>>(
    rule: Rule,
    h1: &[u64],
    h2: &[u64],
    ts: &[i64],
    a: &[f64],
    b: &[f64],
) -> Option<HashedBars<S::Bars>> {
    let n = ts.len();
    let mut mid = n / 2;
    while mid < n && (h1[mid], h2[mid]) == (h1[mid - 1], h2[mid - 1]) {
        mid += 1;
    }
    if mid == n {
        return None;
    }
    let (left, right) = std::thread::scope(|scope| {
        let right = scope.spawn(|| {
            hashed_pass::<S>(
                rule,
                &h1[mid..],
                &h2[mid..],
                &ts[mid..],
                &a[mid..],
                &b[mid..],
            )
        });
        let left = hashed_pass::<S>(
            rule,
            &h1[..mid],
            &h2[..mid],
            &ts[..mid],
            &a[..mid],
            &b[..mid],
        );
        (left, right.join().expect("bar worker thread panicked"))
    });
    let (mut left, right) = (left.ok()??, right.ok()??);
    if right
        .interner
        .first_rows
        .iter()
        .any(|&r| left.interner.map.contains_key(&h1[mid + r]))
    {
        return None;
    }
    let offset = left.interner.len() as u32;
    left.bars.append(right.bars, offset);
    let mut first_rows = left.interner.into_first_rows();
    first_rows.extend(right.interner.first_rows.iter().map(|&r| r + mid));
    let stats = left.stats + right.stats;
    Some(HashedBars {
        bars: left.bars,
        first_rows,
        stats,
    })
}

/// One pass over rows in time order per symbol, interning hashes as it goes.
struct HashedPass<B> {
    bars: B,
    interner: HashInterner,
    stats: Stats,
}

impl<B> HashedPass<B> {
    fn into_bars(self) -> HashedBars<B> {
        HashedBars {
            bars: self.bars,
            first_rows: self.interner.into_first_rows(),
            stats: self.stats,
        }
    }
}

/// Bars of rows in time order per symbol (closed and ordered by code); None if they are not in order.
fn hashed_pass<S: Source<Tick = (f64, f64)>>(
    rule: Rule,
    h1: &[u64],
    h2: &[u64],
    ts: &[i64],
    a: &[f64],
    b: &[f64],
) -> Result<Option<HashedPass<S::Bars>>, BarError> {
    let mut interner = HashInterner::default();
    let mut agg = Aggregator::<S>::new(rule)?;
    let mut out = S::Bars::default();
    if !push_rows(&mut agg, &mut out, ts, a, b, |i| {
        interner.code(i, h1[i], h2[i])
    })? {
        return Ok(None);
    }
    agg.close(&mut out);
    sort_by_symbol(&mut out, interner.len());
    Ok(Some(HashedPass {
        bars: out,
        interner,
        stats: agg.stats(),
    }))
}

/// Pushes rows `0..n` in order, the symbol id of row `i` being `id_at(i)` (called in row order; calling
/// it again for a row must give the same id). Returns `Ok(false)` as soon as a symbol's ticks go back in
/// time (the aggregator is then only partly fed and must be discarded).
fn push_rows<S: Source<Tick = (f64, f64)>>(
    agg: &mut Aggregator<S>,
    out: &mut S::Bars,
    ts: &[i64],
    a: &[f64],
    b: &[f64],
    mut id_at: impl FnMut(usize) -> Result<u32, BarError>,
) -> Result<bool, BarError> {
    let n = ts.len();
    // Rows grouped by symbol (long runs) keep each bar in registers for the run; rows interleaved tick
    // by tick go one at a time. Decided from the first rows.
    let probe = n.min(4096);
    let mut changes = 0;
    if n > 0 {
        let mut prev = id_at(0)?;
        for i in 1..probe {
            let id = id_at(i)?;
            changes += usize::from(id != prev);
            prev = id;
        }
    }
    let long_runs = changes * 16 < probe;
    let mut last: Vec<i64> = Vec::new();
    let mut stats = agg.stats;
    let mut sorted = true;
    let mut i = 0;
    while i < n {
        let id = id_at(i)?;
        let k = id as usize;
        if k >= last.len() {
            last.resize(k + 1, i64::MIN);
        }
        if ts[i] < last[k] {
            sorted = false;
            break;
        }
        if long_runs {
            let mut j = i + 1;
            while j < n && id_at(j)? == id {
                j += 1;
            }
            agg.stats = stats;
            sorted = agg.push_sorted_run(id, &ts[i..j], &a[i..j], &b[i..j], out);
            stats = agg.stats;
            if !sorted {
                break;
            }
            last[k] = ts[j - 1];
            i = j;
        } else {
            // Counting into a local keeps the counters in registers across ticks.
            last[k] = ts[i];
            agg.push_counted(&mut stats, id, ts[i], (a[i], b[i]), out);
            i += 1;
        }
    }
    agg.stats = stats;
    Ok(sorted)
}

/// The stable permutation that orders rows by `key[symbol]` (a counting sort; `key` maps every symbol
/// into `0..key.len()`). Bars of one symbol are already in time order, so this sorts by `(key, ts)`.
pub fn order_by_key(symbols: &[u32], key: &[u32]) -> Result<Vec<usize>, BarError> {
    let k = key.len();
    if let Some(&bad) = symbols.iter().find(|&&s| s as usize >= k) {
        return Err(BarError(format!("symbol code {bad} has no key ({k} keys)")));
    }
    if let Some(&bad) = key.iter().find(|&&x| x as usize >= k) {
        return Err(BarError(format!("key {bad} out of range 0..{k}")));
    }
    let mut start = vec![0usize; k + 1];
    for &s in symbols {
        start[key[s as usize] as usize + 1] += 1;
    }
    for i in 0..k {
        start[i + 1] += start[i];
    }
    let mut perm = vec![0usize; symbols.len()];
    for (row, &s) in symbols.iter().enumerate() {
        let slot = &mut start[key[s as usize] as usize];
        perm[*slot] = row;
        *slot += 1;
    }
    Ok(perm)
}

/// Orders bars by `(symbol, ts)`, if they are not already.
fn sort_by_symbol<B: BarColumns>(out: &mut B, n_symbols: usize) {
    let syms = out.symbols();
    if syms.windows(2).all(|w| w[0] <= w[1]) {
        return;
    }
    let identity: Vec<u32> = (0..n_symbols as u32).collect();
    let perm = order_by_key(syms, &identity).expect("bar symbols are < n_symbols");
    out.permute(&perm);
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60 * NS_PER_SEC;

    fn time(every: i64) -> Rule {
        Rule::Time { every, origin: 0 }
    }

    fn stream(rule: Rule, ticks: &[(u32, i64, f64, f64)]) -> (TradeBars, Stats) {
        let mut agg = Aggregator::<Trades>::new(rule).unwrap();
        let mut out = TradeBars::default();
        for &(s, t, p, q) in ticks {
            agg.push(s, t, (p, q), &mut out);
        }
        agg.close(&mut out);
        (out, agg.stats())
    }

    #[test]
    fn parses_intervals() {
        assert_eq!(parse_every("1s").unwrap(), NS_PER_SEC);
        assert_eq!(parse_every("5m").unwrap(), 5 * MIN);
        assert_eq!(parse_every("15m").unwrap(), 15 * MIN);
        assert_eq!(parse_every("1h").unwrap(), 60 * MIN);
        assert_eq!(parse_every("1d").unwrap(), 1440 * MIN);
        assert_eq!(parse_every("1h30m").unwrap(), 90 * MIN);
        assert_eq!(parse_every("250ms").unwrap(), 250_000_000);
        for bad in [
            "",
            "m",
            "5",
            "5x",
            "0s",
            "-1m",
            "1.5m",
            "99999999999999999999d",
        ] {
            assert!(parse_every(bad).is_err(), "{bad:?} should fail");
        }
    }

    #[test]
    fn time_bars_hand_computed() {
        let ticks = [
            (0, 10 * NS_PER_SEC, 10.0, 100.0),
            (0, 20 * NS_PER_SEC, 12.0, 50.0),
            (0, 59 * NS_PER_SEC, 9.0, 50.0),
            (0, MIN, 11.0, 10.0), // exactly on the boundary: next bar
            (0, 3 * MIN + 1, 13.0, 1.0),
        ];
        let (bars, stats) = stream(time(MIN), &ticks);
        assert_eq!(bars.ts, vec![0, MIN, 3 * MIN]);
        assert_eq!(bars.open, vec![10.0, 11.0, 13.0]);
        assert_eq!(bars.high, vec![12.0, 11.0, 13.0]);
        assert_eq!(bars.low, vec![9.0, 11.0, 13.0]);
        assert_eq!(bars.close, vec![9.0, 11.0, 13.0]);
        assert_eq!(bars.volume, vec![200.0, 10.0, 1.0]);
        assert!((bars.vwap[0] - (1000.0 + 600.0 + 450.0) / 200.0).abs() < 1e-12);
        assert_eq!(bars.trades, vec![3, 1, 1]);
        assert_eq!(
            stats,
            Stats {
                ticks: 5,
                bars: 3,
                late: 0,
                rejected: 0
            }
        );
    }

    #[test]
    fn origin_and_negative_timestamps() {
        let rule = Rule::Time {
            every: 10,
            origin: 3,
        };
        let (bars, _) = stream(
            rule,
            &[
                (0, -8, 1.0, 1.0),
                (0, 2, 1.0, 1.0),
                (0, 3, 1.0, 1.0),
                (0, 12, 1.0, 1.0),
            ],
        );
        assert_eq!(bars.ts, vec![-17, -7, 3]);
        assert_eq!(bars.trades, vec![1, 1, 2]);
    }

    #[test]
    fn symbols_are_independent() {
        let ticks = [
            (1, 5, 2.0, 1.0),
            (0, 6, 1.0, 1.0),
            (1, 15, 3.0, 1.0),
            (0, 7, 4.0, 1.0),
        ];
        let (bars, _) = stream(time(10), &ticks);
        // Symbol 1's first bar closes on its next tick; then close() emits in id order.
        assert_eq!(bars.symbol, vec![1, 0, 1]);
        assert_eq!(bars.close, vec![2.0, 4.0, 3.0]);
        assert_eq!(bars.trades, vec![1, 2, 1]);
    }

    #[test]
    fn tick_volume_and_dollar_bars() {
        let ticks: Vec<_> = (0..7)
            .map(|i| (0, i as i64, 10.0 + i as f64, 40.0))
            .collect();
        let (bars, _) = stream(Rule::Ticks(3), &ticks);
        assert_eq!(bars.trades, vec![3, 3, 1]);
        assert_eq!(bars.ts, vec![0, 3, 6]);
        // Volume 100: 40, 80, 120 -> closes on the third trade (overshoot kept, no split).
        let (bars, _) = stream(Rule::Volume(100.0), &ticks);
        assert_eq!(bars.volume, vec![120.0, 120.0, 40.0]);
        assert_eq!(bars.open, vec![10.0, 13.0, 16.0]);
        // Dollars 900: 400, 840, 1320 -> third trade; then 520+560 = 1080 -> second.
        let (bars, _) = stream(Rule::Dollars(900.0), &ticks);
        assert_eq!(bars.trades, vec![3, 2, 2]);
        // Exactly reaching the threshold closes the bar.
        let (bars, _) = stream(Rule::Volume(80.0), &ticks);
        assert_eq!(bars.trades, vec![2, 2, 2, 1]);
    }

    #[test]
    fn bad_ticks_rejected_without_touching_bars() {
        let ticks = [
            (0, 1, 10.0, 1.0),
            (0, 2, f64::NAN, 1.0),
            (0, 3, f64::INFINITY, 1.0),
            (0, 4, 0.0, 1.0),
            (0, 5, -1.0, 1.0),
            (0, 6, 10.0, -1.0),
            (0, 7, 10.0, f64::NAN),
            (0, 8, 10.0, f64::INFINITY),
            (0, 9, 11.0, 0.0),
        ];
        let (bars, stats) = stream(time(100), &ticks);
        assert_eq!(
            stats,
            Stats {
                ticks: 9,
                bars: 1,
                late: 0,
                rejected: 7
            }
        );
        assert_eq!(
            (bars.high[0], bars.close[0], bars.volume[0], bars.trades[0]),
            (11.0, 11.0, 1.0, 2)
        );
        assert_eq!(bars.vwap[0], 10.0);
    }

    #[test]
    fn late_ticks_dropped_and_in_bar_disorder_kept() {
        let ticks = [
            (0, 15, 1.0, 1.0),
            (0, 12, 2.0, 1.0), // earlier but inside the current bar: becomes the open
            (0, 25, 3.0, 1.0),
            (0, 19, 4.0, 1.0), // bar [10, 20) is closed: late
            (0, 21, 5.0, 1.0), // inside [20, 30) but before 25: kept, close stays 3
        ];
        let (bars, stats) = stream(time(10), &ticks);
        assert_eq!(stats.late, 1);
        assert_eq!(bars.open, vec![2.0, 5.0]);
        assert_eq!(bars.close, vec![1.0, 3.0]);
        // Count-based bars: a tick before the current bar's first tick is late.
        let (bars, stats) = stream(
            Rule::Ticks(2),
            &[(0, 10, 1.0, 1.0), (0, 9, 1.0, 1.0), (0, 11, 1.0, 1.0)],
        );
        assert_eq!((stats.late, bars.trades.clone()), (1, vec![2]));
        let (_, stats) = stream(
            Rule::Ticks(2),
            &[(0, 10, 1.0, 1.0), (0, 12, 1.0, 1.0), (0, 11, 1.0, 1.0)],
        );
        assert_eq!(stats.late, 1);
    }

    #[test]
    fn flush_emits_on_time_and_later_ticks_are_late() {
        let mut agg = Aggregator::<Trades>::new(time(10)).unwrap();
        let mut out = TradeBars::default();
        agg.push(0, 3, (1.0, 1.0), &mut out);
        agg.push(1, 14, (1.0, 1.0), &mut out);
        agg.flush(9, &mut out);
        assert!(out.is_empty());
        agg.flush(10, &mut out);
        assert_eq!((out.symbol.clone(), out.ts.clone()), (vec![0], vec![0]));
        assert!(!agg.push(0, 7, (1.0, 1.0), &mut out));
        assert_eq!(agg.stats().late, 1);
        agg.flush(i64::MAX, &mut out);
        assert_eq!(out.ts, vec![0, 10]);
        assert_eq!(agg.stats().bars, 2);
        // Count-based bars have no end: flush leaves them open, close emits them.
        let mut agg = Aggregator::<Trades>::new(Rule::Ticks(5)).unwrap();
        let mut out = TradeBars::default();
        agg.push(0, 3, (1.0, 1.0), &mut out);
        agg.flush(i64::MAX, &mut out);
        assert!(out.is_empty());
        agg.close(&mut out);
        assert_eq!(out.trades, vec![1]);
    }

    #[test]
    fn quote_bars() {
        let mut agg = Aggregator::<Quotes>::new(time(10)).unwrap();
        let mut out = QuoteBars::default();
        agg.push(0, 1, (99.0, 101.0), &mut out);
        agg.push(0, 2, (100.0, 100.0), &mut out);
        agg.push(0, 3, (101.0, 100.0), &mut out); // crossed
        agg.push(0, 4, (0.0, 100.0), &mut out);
        agg.push(0, 5, (99.5, f64::NAN), &mut out);
        agg.push(0, 6, (98.0, 99.0), &mut out);
        agg.close(&mut out);
        assert_eq!(agg.stats().rejected, 3);
        assert_eq!(
            (out.open[0], out.high[0], out.low[0], out.close[0]),
            (100.0, 100.0, 98.5, 98.5)
        );
        assert_eq!((out.bid[0], out.ask[0], out.quotes[0]), (98.0, 99.0, 3));
        let s = [200.0, 0.0, 1e4 / 98.5];
        assert!((out.spread_bps_mean[0] - s.iter().sum::<f64>() / 3.0).abs() < 1e-9);
        assert!((out.spread_bps_last[0] - s[2]).abs() < 1e-12);
        assert!(Aggregator::<Quotes>::new(Rule::Volume(10.0)).is_err());
        assert!(Aggregator::<Trades>::new(Rule::Ticks(0)).is_err());
        assert!(Aggregator::<Trades>::new(Rule::Dollars(f64::NAN)).is_err());
    }

    #[test]
    fn batch_sorts_and_equals_streaming() {
        // Deterministic pseudo-random shuffle of ticks for 3 symbols.
        let mut x: u64 = 7;
        let mut rnd = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut ticks: Vec<(u32, i64, f64, f64)> = (0..500)
            .map(|i| {
                (
                    (rnd() % 3) as u32,
                    i as i64 * 7,
                    1.0 + (rnd() % 100) as f64,
                    1.0 + (rnd() % 9) as f64,
                )
            })
            .collect();
        let (expected, stats) = stream(time(50), &ticks);
        assert_eq!(stats.late, 0);
        let mut expected_sorted = expected.clone();
        sort_by_symbol(&mut expected_sorted, 3);
        for round in 0..3 {
            let cols = |t: &[(u32, i64, f64, f64)]| {
                (
                    t.iter().map(|r| r.0).collect::<Vec<_>>(),
                    t.iter().map(|r| r.1).collect::<Vec<_>>(),
                    t.iter().map(|r| r.2).collect::<Vec<_>>(),
                    t.iter().map(|r| r.3).collect::<Vec<_>>(),
                )
            };
            let (s, t, p, q) = cols(&ticks);
            let (bars, st) = aggregate::<Trades>(time(50), &s, 3, &t, &p, &q).unwrap();
            assert_eq!(bars, expected_sorted);
            assert_eq!(st.bars, stats.bars);
            // Symbols given as hashes: codes in first-seen order, same bars once mapped back.
            let h1: Vec<u64> = s.iter().map(|&x| u64::from(x) * 1000 + 17).collect();
            let h2: Vec<u64> = s.iter().map(|&x| u64::from(x) ^ 0xff).collect();
            let hashed = aggregate_hashed::<Trades>(time(50), &h1, &h2, &t, &p, &q).unwrap();
            let code_to_id: Vec<u32> = hashed.first_rows.iter().map(|&r| s[r]).collect();
            let mut remapped = hashed.bars.clone();
            remapped.symbol = remapped
                .symbol
                .iter()
                .map(|&c| code_to_id[c as usize])
                .collect();
            let perm = order_by_key(&hashed.bars.symbol, &code_to_id).unwrap();
            remapped.permute(&perm);
            assert_eq!(remapped, expected_sorted);
            assert_eq!(hashed.stats, st);
            if round == 0 {
                ticks.sort_by_key(|t| t.0); // grouped by symbol, each in time order: the run path
            } else {
                ticks.reverse(); // unsorted (distinct timestamps: same bars): the sorting path
            }
        }
        assert!(aggregate::<Trades>(time(50), &[5], 3, &[0], &[1.0], &[1.0]).is_err());
        assert!(aggregate::<Trades>(time(50), &[0, 1], 3, &[0], &[1.0], &[1.0]).is_err());
        assert!(aggregate_hashed::<Trades>(
            time(50),
            &[1, 1],
            &[2, 3],
            &[0, 1],
            &[1.0; 2],
            &[1.0; 2]
        )
        .is_err());
        assert_eq!(
            order_by_key(&[0, 1, 2, 0, 1], &[2, 0, 1]).unwrap(),
            vec![1, 4, 2, 0, 3]
        );
        assert!(order_by_key(&[3], &[0, 1, 2]).is_err());
        assert!(order_by_key(&[0], &[5]).is_err());
    }

    #[test]
    fn large_grouped_batch_on_two_threads_equals_one_thread() {
        // 4 symbols x 300k rows, grouped by symbol: split across two threads. Then the same with the
        // first symbol repeated at the end (it is in both halves): one thread.
        for repeat_first in [false, true] {
            let per = 300_000usize;
            let mut sym: Vec<u32> = (0..4u32)
                .flat_map(|s| std::iter::repeat_n(s, per))
                .collect();
            let mut ts: Vec<i64> = (0..4)
                .flat_map(|_| (0..per as i64).map(|i| i * 1_000))
                .collect();
            if repeat_first {
                sym.extend(std::iter::repeat_n(0, 10));
                ts.extend((0..10).map(|i| per as i64 * 1_000 + i));
            }
            let p: Vec<f64> = (0..sym.len()).map(|i| 1.0 + (i % 97) as f64).collect();
            let q: Vec<f64> = (0..sym.len()).map(|i| (i % 13) as f64).collect();
            let h1: Vec<u64> = sym
                .iter()
                .map(|&x| u64::from(x).wrapping_mul(0x9E37_79B9_7F4A_7C15))
                .collect();
            let h2: Vec<u64> = sym.iter().map(|&x| u64::from(x) + 7).collect();
            for rule in [time(1_000_000), Rule::Volume(5_000.0)] {
                let (expected, stats) = aggregate::<Trades>(rule, &sym, 4, &ts, &p, &q).unwrap();
                let hashed = aggregate_hashed::<Trades>(rule, &h1, &h2, &ts, &p, &q).unwrap();
                assert_eq!(hashed.first_rows, vec![0, per, 2 * per, 3 * per]);
                assert_eq!(hashed.stats, stats);
                assert_eq!(hashed.bars.symbol, expected.symbol);
                assert_eq!(hashed.bars.ts, expected.ts);
                assert_eq!(hashed.bars.close, expected.close);
                assert_eq!(hashed.bars.trades, expected.trades);
            }
        }
    }

    #[test]
    fn runs_equal_codes() {
        for (per, n_sym) in [(7usize, 5u32), (400_000, 3)] {
            let sym: Vec<u32> = (0..n_sym)
                .flat_map(|s| std::iter::repeat_n(s, per))
                .collect();
            let mut ts: Vec<i64> = (0..n_sym)
                .flat_map(|_| (0..per as i64).map(|i| i * 999))
                .collect();
            let p: Vec<f64> = (0..sym.len()).map(|i| 1.0 + (i % 31) as f64).collect();
            let q: Vec<f64> = (0..sym.len()).map(|i| (i % 5) as f64).collect();
            let lengths = vec![per as u64; n_sym as usize];
            for rule in [time(50_000), Rule::Ticks(4), Rule::Dollars(300.0)] {
                let expected =
                    aggregate::<Trades>(rule, &sym, n_sym as usize, &ts, &p, &q).unwrap();
                assert_eq!(
                    aggregate_runs::<Trades>(rule, &lengths, &ts, &p, &q).unwrap(),
                    expected
                );
            }
            ts.swap(1, 2); // out of order inside a run: the sorting path
            let expected =
                aggregate::<Trades>(time(50_000), &sym, n_sym as usize, &ts, &p, &q).unwrap();
            assert_eq!(
                aggregate_runs::<Trades>(time(50_000), &lengths, &ts, &p, &q).unwrap(),
                expected
            );
        }
        assert!(aggregate_runs::<Trades>(time(5), &[2], &[0], &[1.0], &[1.0]).is_err());
    }

    #[test]
    fn runs_split_on_two_threads_equal_one_thread() {
        // One symbol (split inside its run at a time-bar boundary) and three symbols, each in time order
        // with repeated timestamps; forced onto two threads and onto one, against the sorting path.
        for n_sym in [1u32, 3] {
            let per = 50_000usize;
            let sym: Vec<u32> = (0..n_sym)
                .flat_map(|s| std::iter::repeat_n(s, per))
                .collect();
            let ts: Vec<i64> = (0..n_sym)
                .flat_map(|_| (0..per as i64).map(|i| i / 3 * 7_001))
                .collect();
            let p: Vec<f64> = (0..sym.len()).map(|i| 1.0 + (i % 31) as f64).collect();
            let q: Vec<f64> = (0..sym.len()).map(|i| (i % 5) as f64).collect();
            let lengths = vec![per as u64; n_sym as usize];
            for rule in [time(60_000), time(1), Rule::Ticks(7), Rule::Volume(100.0)] {
                let expected =
                    aggregate::<Trades>(rule, &sym, n_sym as usize, &ts, &p, &q).unwrap();
                for min_rows in [0, usize::MAX] {
                    let got = aggregate_runs_split::<Trades>(rule, &lengths, &ts, &p, &q, min_rows);
                    assert_eq!(
                        got.unwrap(),
                        expected,
                        "{rule:?} {n_sym} symbols {min_rows}"
                    );
                }
            }
        }
        // The split row of time bars opens a later interval than the row before it.
        let ts = [0, 5, 10, 10, 10, 12, 20, 21];
        assert_eq!(split_row(time(10), &[0, 8], &ts), 6);
        assert_eq!(split_row(Rule::Ticks(2), &[0, 8], &ts), 8);
        assert_eq!(split_row(time(10), &[0, 3, 8], &ts), 6);
        assert_eq!(split_row(time(10), &[0, 5, 8], &ts), 5);
    }

    /// Arrow string views of `names`, as two little-endian u64 per row (a longer string than 12 bytes
    /// gets its 4-byte prefix; buffer index and offset are left 0).
    fn views(names: &[&str]) -> Vec<u64> {
        names
            .iter()
            .flat_map(|name| {
                let mut bytes = [0u8; 16];
                bytes[..4].copy_from_slice(&(name.len() as u32).to_le_bytes());
                let inline = if name.len() <= 12 { name.len() } else { 4 };
                bytes[4..4 + inline].copy_from_slice(&name.as_bytes()[..inline]);
                [
                    u64::from_le_bytes(bytes[..8].try_into().unwrap()),
                    u64::from_le_bytes(bytes[8..].try_into().unwrap()),
                ]
            })
            .collect()
    }

    #[test]
    fn runs_from_string_views() {
        let v = views(&["B", "B", "AAPL", "TWELVE_BYTES", "TWELVE_BYTES", "A"]);
        assert_eq!(
            view_runs(&v).unwrap(),
            Some((vec![2, 1, 2, 1], vec![0, 2, 3, 5]))
        );
        assert_eq!(view_runs(&views(&["A", "B", "A"])).unwrap(), None);
        assert_eq!(view_runs(&views(&["A", "THIRTEEN_BYTE"])).unwrap(), None);
        assert!(view_runs(&[1, 2, 3]).is_err());
        assert_eq!(view_runs(&[]).unwrap(), Some((vec![], vec![])));
        // Bytes after the string are not part of it.
        let mut dirty = views(&["AB", "AB", "C"]);
        dirty[3] |= 0xff << 56;
        assert_eq!(view_runs(&dirty).unwrap(), Some((vec![2, 1], vec![0, 2])));
        // Two threads: a run across the middle, then a symbol that comes back in the second half.
        let n = PARALLEL_MIN_ROWS + 10;
        let mut names = vec!["X"; n];
        names[..3].fill("A");
        names[n - 5..].fill("Z");
        assert_eq!(
            view_runs(&views(&names)).unwrap(),
            Some((vec![3, n as u64 - 8, 5], vec![0, 3, n - 5]))
        );
        names[n - 1] = "A";
        assert_eq!(view_runs(&views(&names)).unwrap(), None);
    }

    #[test]
    fn hash_codes() {
        let (codes, first) = codes_from_hashes(&[5, 5, 9, 5, 7, 9], &[1, 1, 2, 1, 3, 2]).unwrap();
        assert_eq!(codes, vec![0, 0, 1, 0, 2, 1]);
        assert_eq!(first, vec![0, 2, 4]);
        assert!(codes_from_hashes(&[5, 9, 5], &[1, 2, 3]).is_err());
    }
}
