//! Exposure manager: per-book caps checked in O(1) against running sums, a trading state machine and a
//! circuit breaker.
//!
//! Money is kept as signed integer cents (`i64`) so that the running sums (gross, net, per sector) updated
//! incrementally on every position change stay exact: no drift however long the manager runs and whatever
//! order the updates come in. A position's market value is `qty x price` rounded to the nearest cent; caps
//! are rounded down to a cent.
//!
//! Caps are per book (e.g. `intraday`, `swing`) and relative to the account equity:
//! - gross: sum over the book's positions of |market value|,
//! - net: |sum of signed market values|,
//! - symbol: |market value| of the book's position in the order's symbol,
//! - sector: sum of |market value| of the book's positions in the symbol's sector (symbols without a
//!   sector are not subject to the sector cap),
//! - order notional: qty x price of the order (absolute, account currency),
//! - open positions: number of non-zero positions of the book.
//!
//! An order is valued at its own price: the position after the order is `(qty + signed order qty) x order
//! price`, the position before at its last mark.
//!
//! Decision rules, in this order:
//! 1. HALTED: only flattening orders (ones that bring the position exactly to zero) are allowed, whatever
//!    the caps (the emergency path must always be able to get flat).
//! 2. REDUCING: only risk-reducing orders (|position| shrinks, the sign does not flip).
//! 3. Orders that add risk (ACTIVE only): equity must be positive; the order notional must be within its
//!    cap; an order that opens or increases a short (or flips a long into a short) is refused for a symbol
//!    that is not shortable; a new position must fit under the open-positions cap.
//! 4. Caps (symbol, sector, gross, net), for every order: the value after the order must be within the cap,
//!    or the cap must already have been exceeded before the order and - for an order that adds risk - the
//!    order must not make that value larger. Risk-reducing orders are thus allowed even when the book is
//!    over its caps (and need no positive equity); the one thing they may not do is take a metric that was
//!    within its cap past it: covering a short raises net exposure in a net-long book, and an order priced
//!    far from the last mark revalues the whole position. Hence no allowed order (outside HALTED) ever
//!    takes a metric that was within its cap past it.

use crate::common::{Side, SymbolTable};
use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

/// Cents per unit of account currency.
const CENTS: f64 = 100.0;
/// Largest |qty x price| accepted for a position or an order (1e14 cents: sums of up to ~90,000 such
/// positions stay inside `i64`).
pub const MAX_NOTIONAL: f64 = 1e12;
/// Independent batch checks of at least this many orders are split across threads.
pub const PARALLEL_MIN_ORDERS: usize = 100_000;
/// Most threads a batch check uses.
const MAX_THREADS: usize = 8;
/// Sector id of symbols without a sector.
pub const NO_SECTOR: u32 = u32::MAX;
/// Symbol id used for symbols the manager has never seen (no position, no sector, default shortability).
pub const UNKNOWN_SYMBOL: u32 = u32::MAX;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TradingState {
    Active,
    Reducing,
    Halted,
}

impl TradingState {
    pub fn as_str(self) -> &'static str {
        match self {
            TradingState::Active => "ACTIVE",
            TradingState::Reducing => "REDUCING",
            TradingState::Halted => "HALTED",
        }
    }
    pub fn parse(s: &str) -> Option<TradingState> {
        match s {
            "ACTIVE" => Some(TradingState::Active),
            "REDUCING" => Some(TradingState::Reducing),
            "HALTED" => Some(TradingState::Halted),
            _ => None,
        }
    }
}

/// Caps of one book; percentages are of account equity.
#[derive(Clone, Debug, PartialEq)]
pub struct BookCaps {
    pub max_gross_pct: f64,
    pub max_net_pct: f64,
    pub max_symbol_pct: f64,
    pub max_sector_pct: f64,
    pub max_order_notional: f64,
    pub max_open_positions: u32,
}

impl BookCaps {
    pub fn validate(&self, book: &str) -> Result<(), String> {
        let pcts = [
            ("max_gross_pct", self.max_gross_pct),
            ("max_net_pct", self.max_net_pct),
            ("max_symbol_pct", self.max_symbol_pct),
            ("max_sector_pct", self.max_sector_pct),
            ("max_order_notional", self.max_order_notional),
        ];
        for (name, v) in pcts {
            if !(v.is_finite() && v > 0.0) {
                return Err(format!(
                    "book {book}: {name} must be finite and > 0, got {v}"
                ));
            }
        }
        if self.max_open_positions == 0 {
            return Err(format!(
                "book {book}: max_open_positions must be > 0, got 0"
            ));
        }
        Ok(())
    }
}

/// Circuit-breaker thresholds, in percent. Daily loss is measured against the equity at the start of the
/// session, drawdown against the highest equity seen. The optional `reduce_*` thresholds move the manager to
/// REDUCING before the hard ones halt it.
#[derive(Clone, Debug, PartialEq)]
pub struct BreakerConfig {
    pub max_daily_loss_pct: f64,
    pub max_drawdown_pct: f64,
    pub reduce_daily_loss_pct: Option<f64>,
    pub reduce_drawdown_pct: Option<f64>,
}

impl BreakerConfig {
    pub fn validate(&self) -> Result<(), String> {
        let all = [
            ("max_daily_loss_pct", Some(self.max_daily_loss_pct)),
            ("max_drawdown_pct", Some(self.max_drawdown_pct)),
            ("reduce_daily_loss_pct", self.reduce_daily_loss_pct),
            ("reduce_drawdown_pct", self.reduce_drawdown_pct),
        ];
        for (name, v) in all {
            if let Some(v) = v {
                if !(v.is_finite() && v > 0.0 && v <= 100.0) {
                    return Err(format!(
                        "circuit breaker: {name} must be in (0, 100], got {v}"
                    ));
                }
            }
        }
        Ok(())
    }
}

/// Outcome category of a check; `name()` is a short stable identifier.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Code {
    Ok = 0,
    Halted = 1,
    Reducing = 2,
    Equity = 3,
    OrderNotional = 4,
    NotShortable = 5,
    OpenPositions = 6,
    Symbol = 7,
    Sector = 8,
    Gross = 9,
    Net = 10,
}

impl Code {
    pub const ALL: [Code; 11] = [
        Code::Ok,
        Code::Halted,
        Code::Reducing,
        Code::Equity,
        Code::OrderNotional,
        Code::NotShortable,
        Code::OpenPositions,
        Code::Symbol,
        Code::Sector,
        Code::Gross,
        Code::Net,
    ];
    /// The first two words of a refusal's reason when they are fixed words of it (None for `Ok` and for
    /// the codes whose words name a symbol, a sector or a value).
    pub fn fixed_head(self) -> Option<&'static str> {
        match self {
            Code::Halted => Some("halted: only"),
            Code::Reducing => Some("reducing: only"),
            Code::OrderNotional => Some("order notional"),
            Code::OpenPositions => Some("open positions"),
            Code::Gross => Some("gross exposure"),
            Code::Net => Some("net exposure"),
            Code::Ok | Code::Equity | Code::NotShortable | Code::Symbol | Code::Sector => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Code::Ok => "ok",
            Code::Halted => "halted",
            Code::Reducing => "reducing",
            Code::Equity => "equity",
            Code::OrderNotional => "order_notional",
            Code::NotShortable => "not_shortable",
            Code::OpenPositions => "open_positions",
            Code::Symbol => "symbol",
            Code::Sector => "sector",
            Code::Gross => "gross",
            Code::Net => "net",
        }
    }
}

/// The result of a check: a code plus the numbers a reason needs (value and cap in the cap's unit:
/// percent of equity, account currency for the order notional, a count for open positions).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Verdict {
    pub code: Code,
    pub value: f64,
    pub cap: f64,
    pub sector: u32,
}

impl Verdict {
    #[inline]
    fn ok() -> Verdict {
        Verdict::of(Code::Ok)
    }
    #[inline]
    fn of(code: Code) -> Verdict {
        Verdict {
            code,
            value: 0.0,
            cap: 0.0,
            sector: NO_SECTOR,
        }
    }
    #[inline]
    pub fn allowed(&self) -> bool {
        self.code == Code::Ok
    }
}

/// Bad input to a mutating or checking call.
#[derive(Clone, Debug, PartialEq)]
pub struct InputError(pub String);

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for InputError {}

fn err<T>(msg: String) -> Result<T, InputError> {
    Err(InputError(msg))
}

/// Nearest cent, halves away from zero (plain arithmetic: no libm call on the hot path).
#[inline]
fn to_cents(v: f64) -> i64 {
    let x = v * CENTS;
    (x + 0.5f64.copysign(x)) as i64
}

#[inline]
fn from_cents(v: i64) -> f64 {
    v as f64 / CENTS
}

/// Positions whose size falls below this fraction of the previous size are treated as closed (absorbs
/// floating-point residue of fractional quantities).
const FLAT_EPS: f64 = 1e-9;

#[inline]
fn snap(new_qty: f64, old_qty: f64) -> f64 {
    if new_qty.abs() <= FLAT_EPS * old_qty.abs().max(1.0) {
        0.0
    } else {
        new_qty
    }
}

/// Displays a number with two decimals, rounded half away from zero, through integer formatting (several
/// times faster than `{:.2}`, which matters on the refusal path of `check_order`).
struct F2(f64);

impl fmt::Display for F2 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = self.0;
        if !v.is_finite() || v.abs() >= 1e15 {
            return write!(f, "{v:.2}");
        }
        let c = (v.abs() * 100.0 + 0.5) as u64;
        let sign = if v < 0.0 && c != 0 { "-" } else { "" };
        write!(f, "{sign}{}.{:02}", c / 100, c % 100)
    }
}

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

#[inline]
fn check_symbol(symbol: &str) -> Result<(), InputError> {
    if symbol.is_empty() {
        return err("symbol must be a non-empty string".into());
    }
    Ok(())
}

fn check_qty_price(qty: f64, price: f64, positive_qty: bool) -> Result<(), InputError> {
    let qty_ok = qty.is_finite() && (!positive_qty || qty > 0.0);
    if qty_ok && price.is_finite() && price > 0.0 && (qty * price).abs() <= MAX_NOTIONAL {
        Ok(())
    } else {
        Err(bad_qty_price(qty, price, positive_qty))
    }
}

#[cold]
#[inline(never)]
fn bad_qty_price(qty: f64, price: f64, positive_qty: bool) -> InputError {
    if !qty.is_finite() || (positive_qty && qty <= 0.0) {
        let want = if positive_qty {
            "finite and > 0"
        } else {
            "finite"
        };
        return InputError(format!("qty must be {want}, got {qty}"));
    }
    if !(price.is_finite() && price > 0.0) {
        return InputError(format!("price must be finite and > 0, got {price}"));
    }
    InputError(format!(
        "qty x price = {} exceeds the supported maximum {MAX_NOTIONAL:e}",
        qty * price
    ))
}

/// One book: caps, positions indexed by symbol id and running sums.
#[derive(Clone, Debug)]
pub struct Book {
    pub name: String,
    pub caps: BookCaps,
    qty: Vec<f64>,
    price: Vec<f64>,
    mv: Vec<i64>,
    gross: i64,
    net: i64,
    sector_gross: Vec<i64>,
    sector_open: Vec<u32>,
    open: u32,
    // Caps in cents for the current equity.
    cap_gross: i64,
    cap_net: i64,
    cap_symbol: i64,
    cap_sector: i64,
    cap_notional: i64,
}

impl Book {
    fn new(name: String, caps: BookCaps) -> Book {
        let cap_notional = to_cents(caps.max_order_notional);
        Book {
            name,
            caps,
            qty: Vec::new(),
            price: Vec::new(),
            mv: Vec::new(),
            gross: 0,
            net: 0,
            sector_gross: Vec::new(),
            sector_open: Vec::new(),
            open: 0,
            cap_gross: 0,
            cap_net: 0,
            cap_symbol: 0,
            cap_sector: 0,
            cap_notional,
        }
    }

    fn set_equity(&mut self, equity: f64) {
        let cap = |pct: f64| -> i64 {
            if equity > 0.0 {
                (pct / 100.0 * equity * CENTS).floor() as i64
            } else {
                0
            }
        };
        self.cap_gross = cap(self.caps.max_gross_pct);
        self.cap_net = cap(self.caps.max_net_pct);
        self.cap_symbol = cap(self.caps.max_symbol_pct);
        self.cap_sector = cap(self.caps.max_sector_pct);
        self.cap_notional = to_cents(self.caps.max_order_notional);
    }

    #[inline]
    fn qty_of(&self, sym: u32) -> f64 {
        self.qty.get(sym as usize).copied().unwrap_or(0.0)
    }
    #[inline]
    fn mv_of(&self, sym: u32) -> i64 {
        self.mv.get(sym as usize).copied().unwrap_or(0)
    }
    #[inline]
    fn sector_of(&self, sector: u32) -> i64 {
        self.sector_gross.get(sector as usize).copied().unwrap_or(0)
    }

    /// Replace the position of `sym` (sector `sector`) by `qty` at `price`, updating every sum.
    fn set(&mut self, sym: u32, sector: u32, qty: f64, price: f64) {
        let i = sym as usize;
        if i >= self.qty.len() {
            self.qty.resize(i + 1, 0.0);
            self.price.resize(i + 1, 0.0);
            self.mv.resize(i + 1, 0);
        }
        let old_mv = self.mv[i];
        let old_open = self.qty[i] != 0.0;
        let new_mv = if qty == 0.0 { 0 } else { to_cents(qty * price) };
        let new_open = qty != 0.0;
        self.qty[i] = qty;
        self.price[i] = price;
        self.mv[i] = new_mv;
        self.gross += new_mv.abs() - old_mv.abs();
        self.net += new_mv - old_mv;
        self.open = self.open + u32::from(new_open) - u32::from(old_open);
        if sector != NO_SECTOR {
            let s = sector as usize;
            if s >= self.sector_gross.len() {
                self.sector_gross.resize(s + 1, 0);
                self.sector_open.resize(s + 1, 0);
            }
            self.sector_gross[s] += new_mv.abs() - old_mv.abs();
            self.sector_open[s] = self.sector_open[s] + u32::from(new_open) - u32::from(old_open);
        }
    }

    /// Move the position of `sym` from sector `from` to sector `to` in the sector sums.
    fn move_sector(&mut self, sym: u32, from: u32, to: u32) {
        let mv = self.mv_of(sym).abs();
        let open = u32::from(self.qty_of(sym) != 0.0);
        if open == 0 {
            return;
        }
        if from != NO_SECTOR {
            self.sector_gross[from as usize] -= mv;
            self.sector_open[from as usize] -= open;
        }
        if to != NO_SECTOR {
            let s = to as usize;
            if s >= self.sector_gross.len() {
                self.sector_gross.resize(s + 1, 0);
                self.sector_open.resize(s + 1, 0);
            }
            self.sector_gross[s] += mv;
            self.sector_open[s] += open;
        }
    }

    #[inline]
    fn pct(&self, cents: i64, equity: f64) -> f64 {
        from_cents(cents) / equity * 100.0
    }
}

/// Book metrics, for reporting and for tests.
#[derive(Clone, Debug, PartialEq)]
pub struct BookMetrics {
    pub gross: f64,
    pub net: f64,
    pub open_positions: u32,
}

/// A symbol's position and sector in one book, as a check sees them.
#[derive(Clone, Copy, Debug)]
struct SymbolState {
    qty: f64,
    mv: i64,
    sector: u32,
    sector_gross: i64,
    shortable: bool,
}

/// Everything a check needs about the position before and after an order.
#[derive(Clone, Copy, Debug)]
struct Impact {
    old_qty: f64,
    new_qty: f64,
    old_mv: i64,
    new_mv: i64,
    notional: i64,
    sector: u32,
    sector_before: i64,
    shortable: bool,
}

/// The decision rules (see the module documentation) for one order's impact on book `b`.
#[inline(always)]
fn evaluate(state: TradingState, equity: f64, b: &Book, im: &Impact) -> Verdict {
    let old_abs = im.old_qty.abs();
    let new_abs = im.new_qty.abs();
    let reducing = im.old_qty != 0.0 && im.new_qty * im.old_qty >= 0.0 && new_abs < old_abs;
    match state {
        TradingState::Halted => {
            return if im.old_qty != 0.0 && im.new_qty == 0.0 {
                Verdict::ok()
            } else {
                Verdict::of(Code::Halted)
            };
        }
        TradingState::Reducing if !reducing => return Verdict::of(Code::Reducing),
        _ => {}
    }
    let no_equity = equity.is_nan() || equity <= 0.0;
    if reducing {
        if no_equity {
            return Verdict::ok(); // caps are meaningless without equity; cutting risk must stay possible
        }
    } else {
        if no_equity {
            return Verdict {
                value: equity,
                ..Verdict::of(Code::Equity)
            };
        }
        if im.notional > b.cap_notional {
            return Verdict {
                code: Code::OrderNotional,
                value: from_cents(im.notional),
                cap: b.caps.max_order_notional,
                sector: NO_SECTOR,
            };
        }
        if im.new_qty < 0.0 && !im.shortable {
            return Verdict::of(Code::NotShortable);
        }
        if im.old_qty == 0.0 && im.new_qty != 0.0 && b.open >= b.caps.max_open_positions {
            return Verdict {
                code: Code::OpenPositions,
                value: f64::from(b.open + 1),
                cap: f64::from(b.caps.max_open_positions),
                sector: NO_SECTOR,
            };
        }
    }
    // A metric may end past its cap only when it was already past it and (for orders that add risk) the
    // order does not make it larger.
    let breach = |before: i64, after: i64, cap: i64| -> bool {
        after > cap
            && if reducing {
                before <= cap
            } else {
                after > before
            }
    };
    let refuse = |code: Code, after: i64, cap: f64, sector: u32| Verdict {
        code,
        value: b.pct(after, equity),
        cap,
        sector,
    };
    let (old_abs_mv, new_abs_mv) = (im.old_mv.abs(), im.new_mv.abs());
    if breach(old_abs_mv, new_abs_mv, b.cap_symbol) {
        return refuse(Code::Symbol, new_abs_mv, b.caps.max_symbol_pct, NO_SECTOR);
    }
    let d_gross = new_abs_mv - old_abs_mv;
    if im.sector != NO_SECTOR {
        let after = im.sector_before + d_gross;
        if breach(im.sector_before, after, b.cap_sector) {
            return refuse(Code::Sector, after, b.caps.max_sector_pct, im.sector);
        }
    }
    let gross_after = b.gross + d_gross;
    if breach(b.gross, gross_after, b.cap_gross) {
        return refuse(Code::Gross, gross_after, b.caps.max_gross_pct, NO_SECTOR);
    }
    let net_after = (b.net + im.new_mv - im.old_mv).abs();
    if breach(b.net.abs(), net_after, b.cap_net) {
        return refuse(Code::Net, net_after, b.caps.max_net_pct, NO_SECTOR);
    }
    Verdict::ok()
}

/// A batch of orders as columns; `ids` index into `names` (the distinct symbols of the batch), `signs`
/// are +1 (buy) / -1 (sell).
#[derive(Clone, Copy, Debug)]
pub struct Orders<'a> {
    pub names: &'a [String],
    pub ids: &'a [u32],
    pub signs: &'a [i8],
    pub qtys: &'a [f64],
    pub prices: &'a [f64],
}

/// The exposure manager: symbols, sectors, books, equity, trading state and circuit breaker.
#[derive(Clone, Debug)]
pub struct ExposureManager {
    books: Vec<Book>,
    symbols: SymbolTable,
    symbol_sector: Vec<u32>,
    symbol_shortable: Vec<bool>,
    sectors: SymbolTable,
    default_shortable: bool,
    equity: f64,
    state: TradingState,
    state_reason: String,
    state_since_ns: i64,
    breaker: BreakerConfig,
    session_start_equity: f64,
    peak_equity: f64,
    session_day: Option<i64>,
    /// The symbols `mark_row` marks (ids, `UNKNOWN_SYMBOL` marks nothing) and their columns in its row.
    held_ids: Vec<u32>,
    held_columns: Vec<usize>,
}

impl ExposureManager {
    pub fn new(
        books: Vec<(String, BookCaps)>,
        breaker: BreakerConfig,
        default_shortable: bool,
    ) -> Result<ExposureManager, InputError> {
        if books.is_empty() {
            return err("at least one book is required".into());
        }
        let mut out = Vec::with_capacity(books.len());
        for (name, caps) in books {
            caps.validate(&name).map_err(InputError)?;
            if out.iter().any(|b: &Book| b.name == name) {
                return err(format!("book {name} is defined twice"));
            }
            out.push(Book::new(name, caps));
        }
        breaker.validate().map_err(InputError)?;
        Ok(ExposureManager {
            books: out,
            symbols: SymbolTable::default(),
            symbol_sector: Vec::new(),
            symbol_shortable: Vec::new(),
            sectors: SymbolTable::default(),
            default_shortable,
            equity: 0.0,
            state: TradingState::Active,
            state_reason: String::new(),
            state_since_ns: now_ns(),
            breaker,
            session_start_equity: f64::NAN,
            peak_equity: f64::NAN,
            session_day: None,
            held_ids: Vec::new(),
            held_columns: Vec::new(),
        })
    }

    // ------------------------------------------------------------------------------ lookups
    pub fn book_names(&self) -> Vec<&str> {
        self.books.iter().map(|b| b.name.as_str()).collect()
    }

    #[inline]
    pub fn book_index(&self, book: &str) -> Result<usize, InputError> {
        match self.books.iter().position(|b| b.name == book) {
            Some(i) => Ok(i),
            None => err(format!(
                "unknown book {book:?} (known: {})",
                self.book_names().join(", ")
            )),
        }
    }

    pub fn book(&self, i: usize) -> &Book {
        &self.books[i]
    }

    /// Id of a known symbol, `UNKNOWN_SYMBOL` otherwise (no allocation, no mutation).
    #[inline]
    pub fn symbol_id(&self, symbol: &str) -> u32 {
        self.symbols.get(symbol).unwrap_or(UNKNOWN_SYMBOL)
    }

    /// Id of a symbol, registering it if new; the empty string is not a symbol.
    pub fn intern_symbol(&mut self, symbol: &str) -> Result<u32, InputError> {
        if let Some(id) = self.symbols.get(symbol) {
            return Ok(id);
        }
        check_symbol(symbol)?;
        let id = self.symbols.intern(symbol);
        self.symbol_sector.push(NO_SECTOR);
        self.symbol_shortable.push(self.default_shortable);
        Ok(id)
    }

    pub fn symbol_name(&self, id: u32) -> &str {
        self.symbols.name(id).unwrap_or("?")
    }

    pub fn sector_name(&self, id: u32) -> &str {
        self.sectors.name(id).unwrap_or("")
    }

    pub fn sector_of(&self, symbol: &str) -> Option<&str> {
        let id = self.symbol_id(symbol);
        if id == UNKNOWN_SYMBOL {
            return None;
        }
        match self.symbol_sector[id as usize] {
            NO_SECTOR => None,
            s => Some(self.sector_name(s)),
        }
    }

    pub fn is_shortable(&self, symbol: &str) -> bool {
        self.shortable_id(self.symbol_id(symbol))
    }

    #[inline]
    fn shortable_id(&self, id: u32) -> bool {
        if id == UNKNOWN_SYMBOL {
            self.default_shortable
        } else {
            self.symbol_shortable[id as usize]
        }
    }

    #[inline]
    fn sector_id_of(&self, id: u32) -> u32 {
        if id == UNKNOWN_SYMBOL {
            NO_SECTOR
        } else {
            self.symbol_sector[id as usize]
        }
    }

    // ---------------------------------------------------------------------- reference data
    /// Assign a symbol to a sector (`None` or "" removes it from any sector); open positions move along.
    pub fn set_sector(&mut self, symbol: &str, sector: Option<&str>) -> Result<(), InputError> {
        let id = self.intern_symbol(symbol)?;
        let to = match sector {
            None | Some("") => NO_SECTOR,
            Some(name) => self.sectors.intern(name),
        };
        let from = self.symbol_sector[id as usize];
        if from != to {
            for b in &mut self.books {
                b.move_sector(id, from, to);
            }
            self.symbol_sector[id as usize] = to;
        }
        Ok(())
    }

    pub fn set_shortable(&mut self, symbol: &str, shortable: bool) -> Result<(), InputError> {
        let id = self.intern_symbol(symbol)?;
        self.symbol_shortable[id as usize] = shortable;
        Ok(())
    }

    // ---------------------------------------------------------------------------- positions
    pub fn equity(&self) -> f64 {
        self.equity
    }

    /// Set account equity (caps are percentages of it). Zero or negative equity refuses every order that
    /// adds risk.
    pub fn set_equity(&mut self, equity: f64) -> Result<(), InputError> {
        if !equity.is_finite() {
            return err(format!("equity must be finite, got {equity}"));
        }
        self.equity = equity;
        for b in &mut self.books {
            b.set_equity(equity);
        }
        Ok(())
    }

    /// Set the position of (book, symbol) to `qty` (signed: negative is short) valued at `price`.
    pub fn update_position(
        &mut self,
        book: &str,
        symbol: &str,
        qty: f64,
        price: f64,
    ) -> Result<(), InputError> {
        let b = self.book_index(book)?;
        check_qty_price(qty, price, false)?;
        let id = self.intern_symbol(symbol)?;
        let sector = self.symbol_sector[id as usize];
        self.books[b].set(id, sector, qty, price);
        Ok(())
    }

    /// Apply a fill: the position changes by the signed order quantity and is valued at the fill price.
    pub fn apply_fill(
        &mut self,
        book: &str,
        symbol: &str,
        side: Side,
        qty: f64,
        price: f64,
    ) -> Result<(), InputError> {
        let b = self.book_index(book)?;
        check_qty_price(qty, price, true)?;
        let id = self.intern_symbol(symbol)?;
        self.apply_id(b, id, side.sign() * qty, price);
        Ok(())
    }

    fn apply_id(&mut self, b: usize, id: u32, signed_qty: f64, price: f64) {
        let sector = self.symbol_sector[id as usize];
        let old = self.books[b].qty_of(id);
        let new = snap(old + signed_qty, old);
        self.books[b].set(id, sector, new, price);
    }

    /// Re-mark every book's position in `symbol` at `price`.
    pub fn mark_price(&mut self, symbol: &str, price: f64) -> Result<(), InputError> {
        let id = self.check_mark(symbol, price)?;
        self.mark_id(id, price);
        Ok(())
    }

    /// `mark_price` for each pair (`symbols[k]`, `prices[k]`) in order, in one call; every pair is
    /// checked first, so an error (naming the symbol) changes nothing.
    pub fn mark_prices<S: AsRef<str>>(
        &mut self,
        symbols: &[S],
        prices: &[f64],
    ) -> Result<(), InputError> {
        if symbols.len() != prices.len() {
            return err(format!(
                "mark_prices: {} symbols but {} prices",
                symbols.len(),
                prices.len()
            ));
        }
        let ids = symbols
            .iter()
            .zip(prices)
            .map(|(s, &p)| {
                let s = s.as_ref();
                self.check_mark(s, p)
                    .map_err(|e| InputError(format!("symbol {s}: {}", e.0)))
            })
            .collect::<Result<Vec<u32>, InputError>>()?;
        for (id, &price) in ids.into_iter().zip(prices) {
            self.mark_id(id, price);
        }
        Ok(())
    }

    /// `mark_prices` by symbol id (`symbol_id`'s, `UNKNOWN_SYMBOL` marks nothing): a loop that marks the
    /// same symbols at every step looks their ids up once. Every pair is checked first.
    pub fn mark_ids(&mut self, ids: &[u32], prices: &[f64]) -> Result<(), InputError> {
        if ids.len() != prices.len() {
            return err(format!(
                "mark_ids: {} ids but {} prices",
                ids.len(),
                prices.len()
            ));
        }
        for (&id, &p) in ids.iter().zip(prices) {
            if id != UNKNOWN_SYMBOL && id as usize >= self.symbol_sector.len() {
                return err(format!("mark_ids: unknown symbol id {id}"));
            }
            self.check_mark_id(id, p)
                .map_err(|e| InputError(format!("symbol {}: {}", self.symbol_name(id), e.0)))?;
        }
        for (&id, &price) in ids.iter().zip(prices) {
            self.mark_id(id, price);
        }
        Ok(())
    }

    /// Remember `symbols` and their `columns` in the rows `mark_row` will be given (a loop whose held
    /// symbols change less often than it marks them: the ids are looked up once per change).
    pub fn hold<S: AsRef<str>>(
        &mut self,
        symbols: &[S],
        columns: &[usize],
    ) -> Result<(), InputError> {
        if symbols.len() != columns.len() {
            return err(format!(
                "hold: {} symbols but {} columns",
                symbols.len(),
                columns.len()
            ));
        }
        self.held_ids = symbols.iter().map(|s| self.symbol_id(s.as_ref())).collect();
        self.held_columns = columns.to_vec();
        Ok(())
    }

    /// `mark_ids` of the held symbols at their columns of `row` (a bar time's closes); every pair is
    /// checked first.
    pub fn mark_row(&mut self, row: impl Fn(usize) -> Option<f64>) -> Result<(), InputError> {
        let prices = self
            .held_columns
            .iter()
            .map(|&c| {
                row(c).ok_or_else(|| InputError(format!("mark_row: no column {c} in the row")))
            })
            .collect::<Result<Vec<f64>, InputError>>()?;
        let ids = std::mem::take(&mut self.held_ids);
        let out = self.mark_ids(&ids, &prices);
        self.held_ids = ids;
        out
    }

    /// The id of `symbol` (UNKNOWN_SYMBOL: nothing to mark) when `price` is a valid mark for every book's
    /// position in it.
    fn check_mark(&self, symbol: &str, price: f64) -> Result<u32, InputError> {
        let id = self.symbol_id(symbol);
        self.check_mark_id(id, price)?;
        Ok(id)
    }

    fn check_mark_id(&self, id: u32, price: f64) -> Result<(), InputError> {
        if !(price.is_finite() && price > 0.0) {
            return err(format!("price must be finite and > 0, got {price}"));
        }
        if id != UNKNOWN_SYMBOL {
            for b in &self.books {
                check_qty_price(b.qty_of(id), price, false)?;
            }
        }
        Ok(())
    }

    fn mark_id(&mut self, id: u32, price: f64) {
        if id == UNKNOWN_SYMBOL {
            return;
        }
        let sector = self.symbol_sector[id as usize];
        for b in &mut self.books {
            let q = b.qty_of(id);
            if q != 0.0 {
                b.set(id, sector, q, price);
            }
        }
    }

    pub fn position(&self, book: &str, symbol: &str) -> Result<(f64, f64), InputError> {
        let b = &self.books[self.book_index(book)?];
        let id = self.symbol_id(symbol);
        let qty = b.qty_of(id);
        if qty == 0.0 {
            return Ok((0.0, 0.0));
        }
        Ok((qty, b.price[id as usize]))
    }

    /// Non-zero positions of a book as (symbol, qty, price).
    pub fn positions(&self, book: &str) -> Result<Vec<(&str, f64, f64)>, InputError> {
        let b = &self.books[self.book_index(book)?];
        Ok(b.qty
            .iter()
            .enumerate()
            .filter(|(_, q)| **q != 0.0)
            .map(|(i, q)| (self.symbol_name(i as u32), *q, b.price[i]))
            .collect())
    }

    pub fn metrics(&self, book: &str) -> Result<BookMetrics, InputError> {
        let b = &self.books[self.book_index(book)?];
        Ok(BookMetrics {
            gross: from_cents(b.gross),
            net: from_cents(b.net),
            open_positions: b.open,
        })
    }

    pub fn sector_gross(&self, book: &str, sector: &str) -> Result<f64, InputError> {
        let b = &self.books[self.book_index(book)?];
        Ok(match self.sectors.get(sector) {
            Some(s) => from_cents(b.sector_of(s)),
            None => 0.0,
        })
    }

    /// Remove every position of every book (sums return to exactly zero).
    pub fn clear_positions(&mut self) {
        for b in &mut self.books {
            let caps = b.caps.clone();
            let name = std::mem::take(&mut b.name);
            *b = Book::new(name, caps);
            b.set_equity(self.equity);
        }
    }

    // -------------------------------------------------------------------------------- checks
    #[inline]
    fn evaluate(&self, b: &Book, im: &Impact) -> Verdict {
        evaluate(self.state, self.equity, b, im)
    }
    /// What a check needs to know about symbol `id` (may be `UNKNOWN_SYMBOL`) in book `book`.
    #[inline]
    fn symbol_state(&self, book: &Book, id: u32) -> SymbolState {
        let sector = self.sector_id_of(id);
        SymbolState {
            qty: book.qty_of(id),
            mv: book.mv_of(id),
            sector,
            sector_gross: if sector == NO_SECTOR {
                0
            } else {
                book.sector_of(sector)
            },
            shortable: self.shortable_id(id),
        }
    }

    /// Check one order of `qty` at `price` (validated) against `book` given its symbol's state.
    #[inline]
    fn check_state(
        &self,
        book: &Book,
        s: &SymbolState,
        side: Side,
        qty: f64,
        price: f64,
    ) -> Verdict {
        let new_qty = snap(s.qty + side.sign() * qty, s.qty);
        let im = Impact {
            old_qty: s.qty,
            new_qty,
            old_mv: s.mv,
            new_mv: to_cents(new_qty * price),
            notional: to_cents(qty * price),
            sector: s.sector,
            sector_before: s.sector_gross,
            shortable: s.shortable,
        };
        self.evaluate(book, &im)
    }

    /// Check one order against the current state of book `b` (by index) for symbol id `id` (may be
    /// `UNKNOWN_SYMBOL`). Inputs must have been validated.
    #[inline]
    pub fn check_id(&self, b: usize, id: u32, side: Side, qty: f64, price: f64) -> Verdict {
        let book = &self.books[b];
        self.check_state(book, &self.symbol_state(book, id), side, qty, price)
    }

    /// Check one order; returns the verdict (use `reason` for the text). O(1): a hash lookup plus a few
    /// comparisons against running sums.
    #[inline]
    pub fn check_order(
        &self,
        symbol: &str,
        side: Side,
        qty: f64,
        price: f64,
        book: &str,
    ) -> Result<Verdict, InputError> {
        let b = self.book_index(book)?;
        check_symbol(symbol)?;
        check_qty_price(qty, price, true)?;
        Ok(self.check_id(b, self.symbol_id(symbol), side, qty, price))
    }

    /// The largest whole quantity <= `qty` that `check_order` allows (0 when none; `qty` <= 0 gives 0),
    /// by a binary search: exact for an order that opens or adds to a position, whose allowed quantities
    /// form a prefix 0..q (a reducing order priced far from the mark may be refused below a threshold).
    pub fn max_allowed_qty(
        &self,
        symbol: &str,
        side: Side,
        qty: i64,
        price: f64,
        book: &str,
    ) -> Result<i64, InputError> {
        if qty <= 0
            || self
                .check_order(symbol, side, qty as f64, price, book)?
                .allowed()
        {
            return Ok(qty.max(0));
        }
        let (mut lo, mut hi) = (0i64, qty);
        while hi - lo > 1 {
            let mid = (lo + hi) / 2;
            if self
                .check_order(symbol, side, mid as f64, price, book)?
                .allowed()
            {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        Ok(lo)
    }

    /// Check many orders of one book. Each order is checked independently against the current state
    /// (`sequential = false`; batches of `PARALLEL_MIN_ORDERS` or more are split across threads), or in order with every allowed order applied as a fill at its price before
    /// the next one is checked (`sequential = true`). `ids` index into `names` (symbols of the batch).
    pub fn check_batch(
        &mut self,
        book: &str,
        orders: &Orders<'_>,
        sequential: bool,
    ) -> Result<Vec<u8>, InputError> {
        let Orders {
            names,
            ids,
            signs,
            qtys,
            prices,
        } = *orders;
        let b = self.book_index(book)?;
        let n = ids.len();
        if signs.len() != n || qtys.len() != n || prices.len() != n {
            return err(format!(
                "arrays must have the same length: symbols {n}, sides {}, qtys {}, prices {}",
                signs.len(),
                qtys.len(),
                prices.len()
            ));
        }
        let validate = |i: usize| -> Result<Side, InputError> {
            if ids[i] as usize >= names.len() {
                return err(format!("symbols[{i}]: code {} out of range", ids[i]));
            }
            let side = match signs[i] {
                1 => Side::Buy,
                -1 => Side::Sell,
                other => {
                    return err(format!(
                        "sides[{i}] must be buy (+1) or sell (-1), got {other}"
                    ))
                }
            };
            check_qty_price(qtys[i], prices[i], true)
                .map_err(|e| InputError(format!("order {i}: {e}")))?;
            Ok(side)
        };
        if names.iter().any(|s| s.is_empty()) {
            return err("symbols must be non-empty strings".into());
        }
        let mut out = Vec::with_capacity(n);
        if !sequential {
            // Nothing changes during the batch: look each distinct symbol up once.
            let book = &self.books[b];
            let states: Vec<SymbolState> = names
                .iter()
                .map(|s| self.symbol_state(book, self.symbol_id(s)))
                .collect();
            // Independent checks of a read-only state: large batches are split across threads.
            out.resize(n, 0);
            let threads = if n >= PARALLEL_MIN_ORDERS {
                std::thread::available_parallelism().map_or(1, |p| p.get().min(MAX_THREADS))
            } else {
                1
            };
            let chunk = n.div_ceil(threads).max(1);
            let run = |start: usize, dst: &mut [u8]| -> Result<(), InputError> {
                for (j, slot) in dst.iter_mut().enumerate() {
                    let i = start + j;
                    let side = validate(i)?;
                    let st = &states[ids[i] as usize];
                    *slot = self.check_state(book, st, side, qtys[i], prices[i]).code as u8;
                }
                Ok(())
            };
            if threads == 1 {
                run(0, &mut out)?;
                return Ok(out);
            }
            let results: Vec<Result<(), InputError>> = std::thread::scope(|scope| {
                let handles: Vec<_> = out
                    .chunks_mut(chunk)
                    .enumerate()
                    .map(|(k, dst)| scope.spawn(move || run(k * chunk, dst)))
                    .collect();
                handles
                    .into_iter()
                    .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
                    .collect()
            });
            // Chunks are in order, so the first error is the one of the lowest bad order.
            results
                .into_iter()
                .collect::<Result<Vec<()>, InputError>>()?;
            return Ok(out);
        }
        // Sequential: validate everything first so that a bad order changes nothing.
        let sides = (0..n)
            .map(validate)
            .collect::<Result<Vec<Side>, InputError>>()?;
        let map = names
            .iter()
            .map(|s| self.intern_symbol(s))
            .collect::<Result<Vec<u32>, InputError>>()?;
        for i in 0..n {
            let id = map[ids[i] as usize];
            let v = self.check_id(b, id, sides[i], qtys[i], prices[i]);
            if v.allowed() {
                self.apply_id(b, id, sides[i].sign() * qtys[i], prices[i]);
            }
            out.push(v.code as u8);
        }
        Ok(out)
    }

    /// Stateless check (the seed's `check_exposure_limits`): `values` are the signed market values of the
    /// book's positions, `existing` the index of the position the order adds to (None: a new position),
    /// `order_value` the signed order notional (+ buys, - sells). Uses the manager's caps and state but
    /// not its positions, sectors or shortability.
    pub fn check_values(
        &self,
        book: &str,
        equity: f64,
        values: &[f64],
        existing: Option<usize>,
        order_value: f64,
    ) -> Result<Verdict, InputError> {
        let bi = self.book_index(book)?;
        if !equity.is_finite() {
            return err(format!("equity must be finite, got {equity}"));
        }
        if !(order_value.is_finite() && order_value != 0.0 && order_value.abs() <= MAX_NOTIONAL) {
            return err(format!("order_value must be finite, non-zero and |v| <= {MAX_NOTIONAL:e}, got {order_value}"));
        }
        let mut book = Book::new(self.books[bi].name.clone(), self.books[bi].caps.clone());
        book.set_equity(equity);
        for (i, &v) in values.iter().enumerate() {
            if !(v.is_finite() && v.abs() <= MAX_NOTIONAL) {
                return err(format!(
                    "positions[{i}] must be a finite market value, got {v}"
                ));
            }
            if v != 0.0 {
                book.set(i as u32, NO_SECTOR, v, 1.0);
            }
        }
        let old = match existing {
            Some(i) if i < values.len() => values[i],
            Some(i) => {
                return err(format!(
                    "position index {i} out of range ({} positions)",
                    values.len()
                ))
            }
            None => 0.0,
        };
        let new = snap(old + order_value, old);
        let im = Impact {
            old_qty: old,
            new_qty: new,
            old_mv: to_cents(old),
            new_mv: to_cents(new),
            notional: to_cents(order_value.abs()),
            sector: NO_SECTOR,
            sector_before: 0,
            shortable: true,
        };
        Ok(evaluate(self.state, equity, &book, &im))
    }

    /// The first two words of `reason` (what the engine counts a refusal under), without formatting the
    /// message when they are fixed words of it; `None` for an allowed verdict.
    pub fn reason_head(&self, v: &Verdict, symbol: &str, book: &str) -> Option<String> {
        if v.allowed() {
            return None;
        }
        if let Some(fixed) = v.code.fixed_head() {
            return Some(fixed.to_string());
        }
        let reason = self.reason(v, symbol, book);
        let mut words = reason.splitn(3, ' ');
        let first = words.next().unwrap_or("");
        Some(match words.next() {
            Some(second) => format!("{first} {second}"),
            None => first.to_string(),
        })
    }

    /// Human-readable reason for a verdict: short, stable, naming the cap and the numbers.
    pub fn reason(&self, v: &Verdict, symbol: &str, book: &str) -> String {
        match v.code {
            Code::Ok => "ok".into(),
            Code::Halted => format!(
                "halted: only flattening orders allowed ({})",
                self.state_reason
            ),
            Code::Reducing => format!(
                "reducing: only risk-reducing orders allowed ({})",
                self.state_reason
            ),
            Code::Equity => format!("equity {} is not positive (book {book})", F2(v.value)),
            Code::OrderNotional => {
                format!(
                    "order notional {} > cap {} (book {book})",
                    F2(v.value),
                    F2(v.cap)
                )
            }
            Code::NotShortable => format!("{symbol} is not shortable (book {book})"),
            Code::OpenPositions => {
                format!("open positions {} > cap {} (book {book})", v.value, v.cap)
            }
            Code::Symbol => format!(
                "symbol {symbol} exposure {}% > cap {}% (book {book})",
                F2(v.value),
                F2(v.cap)
            ),
            Code::Sector => format!(
                "sector {} exposure {}% > cap {}% (book {book})",
                self.sector_name(v.sector),
                F2(v.value),
                F2(v.cap)
            ),
            Code::Gross => format!(
                "gross exposure {}% > cap {}% (book {book})",
                F2(v.value),
                F2(v.cap)
            ),
            Code::Net => format!(
                "net exposure {}% > cap {}% (book {book})",
                F2(v.value),
                F2(v.cap)
            ),
        }
    }

    // ------------------------------------------------------------------- state and breaker
    pub fn state(&self) -> TradingState {
        self.state
    }
    pub fn state_reason(&self) -> &str {
        &self.state_reason
    }
    pub fn state_since_ns(&self) -> i64 {
        self.state_since_ns
    }
    pub fn session_day(&self) -> Option<i64> {
        self.session_day
    }
    pub fn session_start_equity(&self) -> f64 {
        self.session_start_equity
    }
    pub fn peak_equity(&self) -> f64 {
        self.peak_equity
    }

    /// Set the trading state by hand (with a reason and the time, UTC ns; None: now).
    pub fn set_state(&mut self, state: TradingState, reason: &str, ts_ns: Option<i64>) {
        self.state = state;
        self.state_reason = reason.to_string();
        self.state_since_ns = ts_ns.unwrap_or_else(now_ns);
    }

    /// Start a session (`day` identifies it, e.g. days since the epoch): the daily-loss reference becomes
    /// `equity` and any state returns to ACTIVE.
    pub fn start_session(
        &mut self,
        day: i64,
        equity: f64,
        ts_ns: Option<i64>,
    ) -> Result<(), InputError> {
        self.set_equity(equity)?;
        self.session_day = Some(day);
        self.session_start_equity = equity;
        if self.peak_equity.is_nan() || self.peak_equity < equity {
            self.peak_equity = equity;
        }
        self.set_state(TradingState::Active, "new session", ts_ns);
        Ok(())
    }

    /// Restore the breaker and state from a saved snapshot (see `session_day`, `session_start_equity`,
    /// `peak_equity`, `state`, `state_reason`, `state_since_ns`).
    pub fn restore_breaker(
        &mut self,
        day: Option<i64>,
        session_start_equity: f64,
        peak_equity: f64,
        state: TradingState,
        reason: &str,
        since_ns: i64,
    ) -> Result<(), InputError> {
        for (name, v) in [
            ("session_start_equity", session_start_equity),
            ("peak_equity", peak_equity),
        ] {
            if day.is_some() && !v.is_finite() {
                return err(format!(
                    "{name} must be finite for a started session, got {v}"
                ));
            }
        }
        self.session_day = day;
        self.session_start_equity = session_start_equity;
        self.peak_equity = peak_equity;
        self.set_state(state, reason, Some(since_ns));
        Ok(())
    }

    /// Explicit reset: ACTIVE again, and the daily-loss and drawdown references restart from the current
    /// equity (a deliberate fresh start; otherwise the breaker would trip again on the next update).
    pub fn reset(&mut self, ts_ns: Option<i64>) {
        if self.equity.is_finite() && self.session_day.is_some() {
            self.session_start_equity = self.equity;
            self.peak_equity = self.equity;
        }
        self.set_state(TradingState::Active, "reset", ts_ns);
    }

    /// Record the current equity and evaluate the circuit breaker; true when the manager is HALTED (all
    /// positions should be flattened). Without a started session, the first call starts one.
    pub fn update_breaker(&mut self, equity: f64, ts_ns: Option<i64>) -> Result<bool, InputError> {
        if self.session_day.is_none() {
            self.start_session(0, equity, ts_ns)?;
        }
        self.set_equity(equity)?;
        if self.peak_equity.is_nan() || self.peak_equity < equity {
            self.peak_equity = equity;
        }
        if self.state == TradingState::Halted {
            return Ok(true);
        }
        let pct_below = |reference: f64| -> f64 {
            if reference > 0.0 {
                (reference - equity) / reference * 100.0
            } else {
                0.0
            }
        };
        let daily = pct_below(self.session_start_equity);
        let dd = pct_below(self.peak_equity);
        let c = &self.breaker;
        let trip = if daily >= c.max_daily_loss_pct {
            Some((
                TradingState::Halted,
                format!(
                    "daily loss {daily:.2}% >= limit {:.2}%",
                    c.max_daily_loss_pct
                ),
            ))
        } else if dd >= c.max_drawdown_pct {
            Some((
                TradingState::Halted,
                format!("drawdown {dd:.2}% >= limit {:.2}%", c.max_drawdown_pct),
            ))
        } else if self.state == TradingState::Active {
            match (c.reduce_daily_loss_pct, c.reduce_drawdown_pct) {
                (Some(lim), _) if daily >= lim => Some((
                    TradingState::Reducing,
                    format!("daily loss {daily:.2}% >= reduce level {lim:.2}%"),
                )),
                (_, Some(lim)) if dd >= lim => Some((
                    TradingState::Reducing,
                    format!("drawdown {dd:.2}% >= reduce level {lim:.2}%"),
                )),
                _ => None,
            }
        } else {
            None
        };
        if let Some((state, reason)) = trip {
            self.set_state(state, &reason, ts_ns);
        }
        Ok(self.state == TradingState::Halted)
    }

    /// `update_breaker` at each (`equities[k]`, `ts_ns[k]`) in turn (a stretch of bar times at once, by the
    /// same step); with `stop_at_halt`, it stops after the first step that finds the manager HALTED. The
    /// number of steps taken. A bad equity stops it with an error, the steps before it taken.
    pub fn update_breaker_path(
        &mut self,
        equities: &[f64],
        ts_ns: &[i64],
        stop_at_halt: bool,
    ) -> Result<usize, InputError> {
        if equities.len() != ts_ns.len() {
            return err(format!(
                "update_breaker_path: {} equities but {} times",
                equities.len(),
                ts_ns.len()
            ));
        }
        for (k, (&equity, &ts)) in equities.iter().zip(ts_ns).enumerate() {
            if self.update_breaker(equity, Some(ts))? && stop_at_halt {
                return Ok(k + 1);
            }
        }
        Ok(equities.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps() -> BookCaps {
        BookCaps {
            max_gross_pct: 50.0,
            max_net_pct: 25.0,
            max_symbol_pct: 10.0,
            max_sector_pct: 20.0,
            max_order_notional: 20_000.0,
            max_open_positions: 3,
        }
    }

    fn breaker() -> BreakerConfig {
        BreakerConfig {
            max_daily_loss_pct: 3.0,
            max_drawdown_pct: 10.0,
            reduce_daily_loss_pct: Some(2.0),
            reduce_drawdown_pct: None,
        }
    }

    fn mgr() -> ExposureManager {
        let mut m =
            ExposureManager::new(vec![("intraday".into(), caps())], breaker(), true).unwrap();
        m.set_equity(100_000.0).unwrap();
        m
    }

    #[test]
    fn reason_head_is_the_reasons_first_two_words() {
        let mut m = mgr();
        m.set_sector("AAA", Some("Consumer Staples")).unwrap();
        for code in Code::ALL {
            let v = Verdict {
                code,
                value: 12.5,
                cap: 10.0,
                sector: m.symbol_sector[m.symbol_id("AAA") as usize],
            };
            let head = m.reason_head(&v, "AAA", "intraday");
            if code == Code::Ok {
                assert_eq!(head, None);
                continue;
            }
            let reason = m.reason(&v, "AAA", "intraday");
            let words: Vec<&str> = reason.splitn(3, ' ').take(2).collect();
            assert_eq!(
                head.as_deref(),
                Some(words.join(" ").as_str()),
                "{code:?}: {reason}"
            );
        }
    }

    #[test]
    fn max_allowed_qty_is_the_largest_allowed() {
        let mut m = mgr();
        m.update_position("intraday", "AAA", 100.0, 100.0).unwrap();
        // symbol cap 10% of 100k = 10k: 100 shares at 100 are held, so no more can be bought
        assert_eq!(
            m.max_allowed_qty("AAA", Side::Buy, 50, 100.0, "intraday")
                .unwrap(),
            0
        );
        // a new symbol: 10k / 100 = 100 shares at most
        let q = m
            .max_allowed_qty("BBB", Side::Buy, 500, 100.0, "intraday")
            .unwrap();
        assert_eq!(q, 100);
        assert!(m
            .check_order("BBB", Side::Buy, 100.0, 100.0, "intraday")
            .unwrap()
            .allowed());
        assert!(!m
            .check_order("BBB", Side::Buy, 101.0, 100.0, "intraday")
            .unwrap()
            .allowed());
        assert_eq!(
            m.max_allowed_qty("BBB", Side::Buy, 7, 100.0, "intraday")
                .unwrap(),
            7
        );
        assert_eq!(
            m.max_allowed_qty("BBB", Side::Buy, -3, 100.0, "intraday")
                .unwrap(),
            0
        );
        assert!(m
            .max_allowed_qty("BBB", Side::Buy, 5, f64::NAN, "intraday")
            .is_err());
    }

    #[test]
    fn mark_ids_marks_like_mark_prices() {
        let mut a = mgr();
        a.update_position("intraday", "AAA", 10.0, 100.0).unwrap();
        a.update_position("intraday", "BBB", -5.0, 50.0).unwrap();
        let mut b = a.clone();
        a.mark_prices(&["AAA", "BBB", "ZZZ"], &[110.0, 40.0, 1.0])
            .unwrap();
        let ids = [b.symbol_id("AAA"), b.symbol_id("BBB"), b.symbol_id("ZZZ")];
        assert_eq!(ids[2], UNKNOWN_SYMBOL);
        b.mark_ids(&ids, &[110.0, 40.0, 1.0]).unwrap();
        assert_eq!(
            a.metrics("intraday").unwrap(),
            b.metrics("intraday").unwrap()
        );
        assert_eq!(b.position("intraday", "AAA").unwrap(), (10.0, 110.0));
        // a bad price changes nothing and names the symbol
        let e = b.mark_ids(&ids[..2], &[120.0, f64::NAN]).unwrap_err();
        assert!(e.0.contains("symbol BBB"), "{}", e.0);
        assert_eq!(b.position("intraday", "AAA").unwrap(), (10.0, 110.0));
        assert!(b.mark_ids(&[77], &[1.0]).is_err());
        assert!(b.mark_ids(&ids, &[1.0]).is_err());
    }

    #[test]
    fn mark_row_marks_the_held_symbols_at_their_columns() {
        let mut a = mgr();
        a.update_position("intraday", "AAA", 10.0, 100.0).unwrap();
        a.update_position("intraday", "BBB", -5.0, 50.0).unwrap();
        let mut b = a.clone();
        a.mark_prices(&["BBB", "AAA"], &[40.0, 110.0]).unwrap();
        b.hold(&["AAA", "ZZZ", "BBB"], &[2, 0, 1]).unwrap();
        let row = [1.0, 40.0, 110.0];
        b.mark_row(|c| row.get(c).copied()).unwrap();
        assert_eq!(
            a.metrics("intraday").unwrap(),
            b.metrics("intraday").unwrap()
        );
        assert_eq!(b.position("intraday", "BBB").unwrap(), (-5.0, 40.0));
        // a missing column or a bad price changes nothing
        assert!(b.mark_row(|c| [1.0, 41.0].get(c).copied()).is_err());
        let bad = [1.0, 41.0, f64::NAN];
        assert!(b.mark_row(|c| bad.get(c).copied()).is_err());
        assert_eq!(b.position("intraday", "BBB").unwrap(), (-5.0, 40.0));
        assert!(b.hold(&["AAA"], &[0, 1]).is_err());
    }

    fn code(m: &ExposureManager, sym: &str, side: Side, qty: f64, price: f64) -> Code {
        m.check_order(sym, side, qty, price, "intraday")
            .unwrap()
            .code
    }

    #[test]
    fn symbol_cap_exact_boundary() {
        let m = mgr();
        // 10% of 100k = 10k: 100 x 100 is exactly at the cap, one more share is over.
        assert_eq!(code(&m, "A", Side::Buy, 100.0, 100.0), Code::Ok);
        let v = m
            .check_order("A", Side::Buy, 101.0, 100.0, "intraday")
            .unwrap();
        assert_eq!(v.code, Code::Symbol);
        assert_eq!(
            m.reason(&v, "A", "intraday"),
            "symbol A exposure 10.10% > cap 10.00% (book intraday)"
        );
    }

    #[test]
    fn gross_net_sector_caps() {
        let mut m = mgr();
        m.set_sector("A", Some("Tech")).unwrap();
        m.set_sector("B", Some("Tech")).unwrap();
        m.set_sector("C", Some("Tech")).unwrap();
        m.update_position("intraday", "A", 100.0, 100.0).unwrap(); // 10k Tech
        m.update_position("intraday", "B", 90.0, 100.0).unwrap(); // 9k Tech
                                                                  // Tech at 19k; 2k more is 21% > 20%, 1k more is exactly 20%.
        let v = m
            .check_order("C", Side::Buy, 20.0, 100.0, "intraday")
            .unwrap();
        assert_eq!(v.code, Code::Sector);
        assert_eq!(
            m.reason(&v, "C", "intraday"),
            "sector Tech exposure 21.00% > cap 20.00% (book intraday)"
        );
        assert_eq!(code(&m, "C", Side::Buy, 10.0, 100.0), Code::Ok);
        // Net 19k: 7k more long is 26% > 25%; 6k is exactly 25%.
        let v = m
            .check_order("E", Side::Buy, 70.0, 100.0, "intraday")
            .unwrap();
        assert_eq!(v.code, Code::Net);
        assert_eq!(
            m.reason(&v, "E", "intraday"),
            "net exposure 26.00% > cap 25.00% (book intraday)"
        );
        assert_eq!(code(&m, "E", Side::Buy, 60.0, 100.0), Code::Ok);
        // A third position fills the open-positions cap of 3.
        m.update_position("intraday", "D", -50.0, 100.0).unwrap();
        let v = m
            .check_order("E", Side::Buy, 10.0, 100.0, "intraday")
            .unwrap();
        assert_eq!(v.code, Code::OpenPositions);
        assert_eq!(
            m.reason(&v, "E", "intraday"),
            "open positions 4 > cap 3 (book intraday)"
        );
        assert_eq!(
            m.metrics("intraday").unwrap(),
            BookMetrics {
                gross: 24_000.0,
                net: 14_000.0,
                open_positions: 3
            }
        );
    }

    #[test]
    fn gross_cap() {
        let mut m = ExposureManager::new(
            vec![(
                "b".into(),
                BookCaps {
                    max_open_positions: 100,
                    max_symbol_pct: 100.0,
                    max_net_pct: 100.0,
                    max_sector_pct: 100.0,
                    ..caps()
                },
            )],
            breaker(),
            true,
        )
        .unwrap();
        m.set_equity(100_000.0).unwrap();
        for (i, q) in [100.0, -100.0, 100.0, -100.0].iter().enumerate() {
            m.update_position("b", &format!("S{i}"), *q, 100.0).unwrap();
        }
        // gross 40k; 10k more = 50% exactly ok; 10.01k over.
        assert_eq!(
            m.check_order("X", Side::Sell, 100.0, 100.0, "b")
                .unwrap()
                .code,
            Code::Ok
        );
        let v = m.check_order("X", Side::Sell, 100.0, 100.1, "b").unwrap();
        assert_eq!(v.code, Code::Gross);
        assert_eq!(
            m.reason(&v, "X", "b"),
            "gross exposure 50.01% > cap 50.00% (book b)"
        );
    }

    #[test]
    fn order_notional_and_shortable() {
        let mut m = mgr();
        let v = m
            .check_order("A", Side::Buy, 201.0, 100.0, "intraday")
            .unwrap();
        assert_eq!(v.code, Code::OrderNotional);
        assert_eq!(
            m.reason(&v, "A", "intraday"),
            "order notional 20100.00 > cap 20000.00 (book intraday)"
        );
        m.set_shortable("A", false).unwrap();
        assert_eq!(code(&m, "A", Side::Sell, 10.0, 100.0), Code::NotShortable);
        // long 50, sell 50 closes: fine; sell 60 flips to short: refused.
        m.update_position("intraday", "A", 50.0, 100.0).unwrap();
        assert_eq!(code(&m, "A", Side::Sell, 50.0, 100.0), Code::Ok);
        assert_eq!(code(&m, "A", Side::Sell, 60.0, 100.0), Code::NotShortable);
        // an existing short (e.g. taken before the flag) can be covered, not increased.
        m.update_position("intraday", "A", -50.0, 100.0).unwrap();
        assert_eq!(code(&m, "A", Side::Buy, 20.0, 100.0), Code::Ok);
        assert_eq!(code(&m, "A", Side::Sell, 1.0, 100.0), Code::NotShortable);
    }

    #[test]
    fn risk_reducing_allowed_over_caps() {
        let mut m = mgr();
        m.update_position("intraday", "A", 100.0, 100.0).unwrap();
        m.set_equity(20_000.0).unwrap(); // now 50% in one symbol, 50% gross, caps 10/50/25
        assert_eq!(code(&m, "A", Side::Buy, 1.0, 100.0), Code::Symbol);
        assert_eq!(code(&m, "A", Side::Sell, 99.0, 100.0), Code::Ok);
        // reducing exempts even the order notional cap (bounded by the position itself)
        m.update_position("intraday", "A", 1000.0, 100.0).unwrap();
        assert_eq!(code(&m, "A", Side::Sell, 1000.0, 100.0), Code::Ok);
        // flip is not reducing: sell 1001 opens a 1-share short and breaks the notional cap
        assert_eq!(
            code(&m, "A", Side::Sell, 1001.0, 100.0),
            Code::OrderNotional
        );
    }

    #[test]
    fn risk_reducing_may_not_take_a_held_cap_past_it() {
        let mut m = mgr();
        // net: long 20k, short 4k -> net 16k of a 25k cap; covering 4k is fine...
        m.update_position("intraday", "A", 100.0, 100.0).unwrap();
        m.update_position("intraday", "B", 100.0, 100.0).unwrap();
        m.update_position("intraday", "C", -40.0, 100.0).unwrap();
        assert_eq!(code(&m, "C", Side::Buy, 40.0, 100.0), Code::Ok);
        // ...but with 10k more long, covering 2k takes net from 25% past it (27%)
        m.update_position("intraday", "A", 100.0, 190.0).unwrap();
        assert_eq!(code(&m, "C", Side::Buy, 20.0, 100.0), Code::Net);
        assert_eq!(code(&m, "A", Side::Sell, 10.0, 190.0), Code::Ok);
        // a stale mark: 50 held at 100 (5k), sold at 250 -> 40 x 250 = 10k: at the cap, ok; 45 left is not
        m.update_position("intraday", "D", 0.0, 1.0).unwrap();
        m.update_position("intraday", "C", 0.0, 1.0).unwrap();
        m.update_position("intraday", "A", 50.0, 100.0).unwrap();
        assert_eq!(code(&m, "A", Side::Sell, 10.0, 250.0), Code::Ok);
        assert_eq!(code(&m, "A", Side::Sell, 5.0, 250.0), Code::Symbol);
        // already past its cap (after an equity drop): reducing is allowed even if net rises
        m.update_position("intraday", "C", -40.0, 100.0).unwrap();
        m.set_equity(10_000.0).unwrap();
        assert_eq!(code(&m, "C", Side::Buy, 40.0, 100.0), Code::Ok);
        // no equity: caps cannot be evaluated, risk can still be cut
        m.set_equity(0.0).unwrap();
        assert_eq!(code(&m, "C", Side::Buy, 40.0, 100.0), Code::Ok);
        assert_eq!(code(&m, "C", Side::Sell, 1.0, 100.0), Code::Equity);
    }

    #[test]
    fn hedge_allowed_when_it_does_not_worsen_a_breached_metric() {
        let mut m = mgr();
        m.update_position("intraday", "A", 100.0, 100.0).unwrap();
        m.update_position("intraday", "B", 100.0, 100.0).unwrap();
        m.set_equity(50_000.0).unwrap(); // net 40% > 25%, gross 40% <= 50%, symbols 20% > 10% each
                                         // a 2k short in C lowers net (40 -> 36%) and keeps gross within 50%: allowed
        assert_eq!(code(&m, "C", Side::Sell, 20.0, 100.0), Code::Ok);
        // a long in C would raise net further
        assert_eq!(code(&m, "C", Side::Buy, 20.0, 100.0), Code::Net);
    }

    #[test]
    fn running_sums_exact_after_churn() {
        let mut m = mgr();
        m.set_sector("A", Some("X")).unwrap();
        for i in 0..10_000 {
            let q = ((i * 7919) % 200) as f64 - 100.0 + 0.1;
            m.update_position("intraday", "A", q, 33.3 + (i % 13) as f64 * 0.01)
                .unwrap();
            m.update_position("intraday", "B", -q * 0.3, 17.7).unwrap();
        }
        m.update_position("intraday", "A", 0.0, 1.0).unwrap();
        m.update_position("intraday", "B", 0.0, 1.0).unwrap();
        let b = &m.books[0];
        assert_eq!((b.gross, b.net, b.open, b.sector_of(0)), (0, 0, 0, 0));
    }

    #[test]
    fn sector_reassignment_moves_exposure() {
        let mut m = mgr();
        m.update_position("intraday", "A", 10.0, 100.0).unwrap();
        m.set_sector("A", Some("X")).unwrap();
        assert_eq!(m.sector_gross("intraday", "X").unwrap(), 1000.0);
        m.set_sector("A", Some("Y")).unwrap();
        assert_eq!(m.sector_gross("intraday", "X").unwrap(), 0.0);
        assert_eq!(m.sector_gross("intraday", "Y").unwrap(), 1000.0);
        m.set_sector("A", None).unwrap();
        assert_eq!(m.sector_gross("intraday", "Y").unwrap(), 0.0);
    }

    #[test]
    fn mark_price_revalues() {
        let mut m = mgr();
        m.update_position("intraday", "A", 100.0, 50.0).unwrap();
        m.update_position("intraday", "B", -10.0, 50.0).unwrap();
        m.mark_price("A", 60.0).unwrap();
        assert_eq!(m.metrics("intraday").unwrap().gross, 6_500.0);
        assert_eq!(m.metrics("intraday").unwrap().net, 5_500.0);
    }

    #[test]
    fn mark_prices_is_mark_price_per_pair_and_all_or_nothing() {
        let mut one = mgr();
        let mut batch = mgr();
        for m in [&mut one, &mut batch] {
            m.update_position("intraday", "A", 100.0, 50.0).unwrap();
            m.update_position("intraday", "B", -10.0, 50.0).unwrap();
        }
        for (s, p) in [("A", 60.0), ("Z", 5.0), ("B", 40.0), ("A", 61.0)] {
            one.mark_price(s, p).unwrap();
        }
        batch
            .mark_prices(&["A", "Z", "B", "A"], &[60.0, 5.0, 40.0, 61.0])
            .unwrap();
        for m in [&one, &batch] {
            assert_eq!(m.metrics("intraday").unwrap().gross, 6_500.0);
            assert_eq!(m.metrics("intraday").unwrap().net, 5_700.0);
        }
        // a bad price anywhere: an error naming its symbol, and no mark changed
        let e = batch
            .mark_prices(&["A", "B"], &[70.0, f64::NAN])
            .unwrap_err();
        assert_eq!(e.0, "symbol B: price must be finite and > 0, got NaN");
        assert!(batch.mark_prices(&["A"], &[1.0, 2.0]).is_err());
        assert_eq!(batch.position("intraday", "A").unwrap(), (100.0, 61.0));
    }

    #[test]
    fn states_and_breaker() {
        let mut m = mgr();
        m.start_session(1, 100_000.0, Some(1)).unwrap();
        m.update_position("intraday", "A", 50.0, 100.0).unwrap();
        assert!(!m.update_breaker(98_500.0, Some(2)).unwrap());
        assert_eq!(m.state(), TradingState::Active);
        assert!(!m.update_breaker(98_000.0, Some(3)).unwrap()); // 2% -> REDUCING
        assert_eq!(m.state(), TradingState::Reducing);
        assert_eq!(m.state_reason(), "daily loss 2.00% >= reduce level 2.00%");
        assert_eq!(m.state_since_ns(), 3);
        assert_eq!(code(&m, "B", Side::Buy, 1.0, 100.0), Code::Reducing);
        assert_eq!(code(&m, "A", Side::Sell, 10.0, 100.0), Code::Ok);
        assert!(m.update_breaker(97_000.0, Some(4)).unwrap()); // 3% -> HALTED
        assert_eq!(m.state(), TradingState::Halted);
        assert_eq!(code(&m, "A", Side::Sell, 10.0, 100.0), Code::Halted);
        assert_eq!(code(&m, "A", Side::Sell, 50.0, 100.0), Code::Ok);
        // recovery does not lift the halt within the session
        assert!(m.update_breaker(100_000.0, Some(5)).unwrap());
        m.start_session(2, 97_000.0, Some(6)).unwrap();
        assert_eq!(m.state(), TradingState::Active);
        assert!(!m.update_breaker(97_000.0, Some(7)).unwrap());
        // drawdown from peak 100k: 10% -> halt
        m.start_session(3, 90_500.0, Some(8)).unwrap();
        assert!(m.update_breaker(90_000.0, Some(9)).unwrap());
        assert_eq!(m.state_reason(), "drawdown 10.00% >= limit 10.00%");
        m.reset(Some(10));
        assert_eq!(m.state(), TradingState::Active);
        assert!(!m.update_breaker(90_000.0, Some(11)).unwrap());
    }

    #[test]
    fn breaker_path_is_the_step_at_each_point() {
        // REDUCING on the way, HALTED at the fourth point, a recovery after it
        let equities = [99_000.0, 98_000.0, 98_500.0, 96_900.0, 100_000.0];
        let ts = [1, 2, 3, 4, 5];
        for stop in [true, false] {
            let (mut path, mut steps) = (mgr(), mgr());
            path.start_session(1, 100_000.0, Some(0)).unwrap();
            steps.start_session(1, 100_000.0, Some(0)).unwrap();
            let taken = path.update_breaker_path(&equities, &ts, stop).unwrap();
            assert_eq!(taken, if stop { 4 } else { 5 });
            for (&e, &t) in equities.iter().zip(&ts).take(taken) {
                steps.update_breaker(e, Some(t)).unwrap();
            }
            assert_eq!(path.state(), steps.state());
            assert_eq!(path.state_reason(), steps.state_reason());
            assert_eq!(path.state_since_ns(), 4);
            assert_eq!(path.peak_equity(), steps.peak_equity());
            assert_eq!(path.equity(), steps.equity());
        }
        let mut m = mgr();
        assert!(m.update_breaker_path(&[1.0, 2.0], &[1], true).is_err());
        assert!(m
            .update_breaker_path(&[1.0, f64::NAN], &[1, 2], true)
            .is_err());
        assert_eq!(m.equity(), 1.0); // the step before the bad one was taken
    }

    #[test]
    fn batch_matches_single_and_sequential_applies() {
        let mut m = mgr();
        m.update_position("intraday", "A", 50.0, 100.0).unwrap();
        let names: Vec<String> = ["A", "B", "C"].iter().map(|s| s.to_string()).collect();
        let ids = [0u32, 1, 2, 1, 0];
        let signs = [1i8, 1, -1, 1, -1];
        let qtys = [60.0, 100.0, 10.0, 5.0, 500.0];
        let prices = [100.0; 5];
        let orders = Orders {
            names: &names,
            ids: &ids,
            signs: &signs,
            qtys: &qtys,
            prices: &prices,
        };
        let out = m.check_batch("intraday", &orders, false).unwrap();
        for i in 0..5 {
            let side = if signs[i] > 0 { Side::Buy } else { Side::Sell };
            let v = m
                .check_order(
                    &names[ids[i] as usize],
                    side,
                    qtys[i],
                    prices[i],
                    "intraday",
                )
                .unwrap();
            assert_eq!(out[i], v.code as u8);
        }
        // sequential: B buys 100 (10k ok), then B 5 more -> symbol cap 10.5%
        let seq = m.check_batch("intraday", &orders, true).unwrap();
        assert_eq!(seq[1], Code::Ok as u8);
        assert_eq!(seq[3], Code::Symbol as u8);
        assert_eq!(m.position("intraday", "B").unwrap(), (100.0, 100.0));
    }

    #[test]
    fn parallel_batch_matches_single_checks_and_reports_the_first_error() {
        let mut m = mgr();
        m.set_sector("S1", Some("X")).unwrap();
        m.update_position("intraday", "S1", 80.0, 100.0).unwrap();
        m.update_position("intraday", "S2", -50.0, 100.0).unwrap();
        let names: Vec<String> = (0..5).map(|i| format!("S{i}")).collect();
        let n = PARALLEL_MIN_ORDERS * 2 + 17;
        let ids: Vec<u32> = (0..n).map(|i| (i * 7 % 5) as u32).collect();
        let signs: Vec<i8> = (0..n).map(|i| if i % 3 == 0 { -1 } else { 1 }).collect();
        let qtys: Vec<f64> = (0..n).map(|i| (1 + i % 250) as f64).collect();
        let prices: Vec<f64> = (0..n).map(|i| 50.0 + (i % 100) as f64).collect();
        let orders = Orders {
            names: &names,
            ids: &ids,
            signs: &signs,
            qtys: &qtys,
            prices: &prices,
        };
        let out = m.check_batch("intraday", &orders, false).unwrap();
        for i in (0..n).step_by(97) {
            let side = if signs[i] > 0 { Side::Buy } else { Side::Sell };
            let v = m.check_id(
                0,
                m.symbol_id(&names[ids[i] as usize]),
                side,
                qtys[i],
                prices[i],
            );
            assert_eq!(out[i], v.code as u8, "order {i}");
        }
        let mut bad = qtys.clone();
        bad[n - 3] = f64::NAN;
        bad[n / 2 + 5] = -1.0;
        let orders = Orders {
            qtys: &bad,
            ..orders
        };
        let e = m.check_batch("intraday", &orders, false).unwrap_err();
        assert!(
            e.0.starts_with(&format!("order {}: qty", n / 2 + 5)),
            "{}",
            e.0
        );
    }

    #[test]
    fn stateless_values() {
        let m = mgr();
        let v = m
            .check_values("intraday", 100_000.0, &[25_000.0, -20_000.0], None, 9_000.0)
            .unwrap();
        assert_eq!(v.code, Code::Gross); // 54% > 50%
        let v = m
            .check_values(
                "intraday",
                100_000.0,
                &[25_000.0, -20_000.0],
                Some(0),
                -15_000.0,
            )
            .unwrap();
        assert_eq!(v.code, Code::Ok); // reduces
        let v = m
            .check_values("intraday", 100_000.0, &[], None, 5_000.0)
            .unwrap();
        assert_eq!(v.code, Code::Ok);
    }

    #[test]
    fn two_decimal_display() {
        let cases = [
            (10.1, "10.10"),
            (-5.0, "-5.00"),
            (0.004, "0.00"),
            (-0.004, "0.00"),
            (99.995, "100.00"),
            (123456.789, "123456.79"),
            (1e20, "100000000000000000000.00"),
        ];
        for (v, want) in cases {
            assert_eq!(F2(v).to_string(), want);
        }
    }

    #[test]
    fn invalid_inputs() {
        let mut m = mgr();
        assert!(m
            .check_order("A", Side::Buy, f64::NAN, 1.0, "intraday")
            .is_err());
        assert!(m.check_order("A", Side::Buy, 1.0, 0.0, "intraday").is_err());
        assert!(m
            .check_order("A", Side::Buy, -1.0, 1.0, "intraday")
            .is_err());
        let e = m.check_order("A", Side::Buy, 1.0, 1.0, "nope").unwrap_err();
        assert_eq!(e.0, "unknown book \"nope\" (known: intraday)");
        assert!(m.set_equity(f64::INFINITY).is_err());
        assert!(m.update_position("intraday", "A", 1e20, 1e3).is_err());
        m.set_equity(0.0).unwrap();
        assert_eq!(code(&m, "A", Side::Buy, 1.0, 1.0), Code::Equity);
    }
}
