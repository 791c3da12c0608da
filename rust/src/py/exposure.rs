//! Python wrapper of the exposure manager: one mutex around the core (thread-safe; batch checks run with
//! the GIL released and take the lock only inside the released section), reasons built only for refusals.
use std::sync::{Mutex, MutexGuard};

use numpy::{PyArray1, PyReadonlyArray1, PyReadonlyArray2, PyUntypedArrayMethods};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::pybacked::PyBackedStr;
use pyo3::types::{PyDict, PyList, PyString};

use crate::common::FastMap;
use crate::exposure::{
    BookCaps, BreakerConfig, Code, ExposureManager as Core, InputError, Orders, TradingState,
    Verdict,
};
use crate::py::parse_side;

fn value_error(e: InputError) -> PyErr {
    PyValueError::new_err(e.0)
}

/// Book caps as passed from Python: (name, max_gross_pct, max_net_pct, max_symbol_pct, max_sector_pct,
/// max_order_notional, max_open_positions).
type BookTuple = (String, f64, f64, f64, f64, f64, u32);

/// `(allowed, code)` arrays of a batch check.
type BatchOut<'py> = (Bound<'py, PyArray1<bool>>, Bound<'py, PyArray1<u8>>);

/// A row of at most 8 code points below 256 as one integer (injective over such rows).
#[inline]
fn pack(row: &[u32]) -> Option<u64> {
    if row.len() > 8 {
        return None;
    }
    let mut k = 0u64;
    for (j, &u) in row.iter().enumerate() {
        if u > 0xff {
            return None;
        }
        k |= u64::from(u) << (8 * j);
    }
    Some(k)
}

/// The string of a UCS-4 row (numpy pads with zeros).
fn decode(row: &[u32], i: usize) -> PyResult<String> {
    row.iter()
        .take_while(|&&u| u != 0)
        .map(|&u| {
            char::from_u32(u)
                .ok_or_else(|| PyValueError::new_err(format!("row {i}: invalid code point {u}")))
        })
        .collect()
}

/// How the engine counts a refusal whose reason starts with `head`.
fn refusal_key(head: &str) -> String {
    format!("exposure: {head}")
}

/// Dictionary-encode a column of strings: (distinct values, code per row). Accepts a list (or any
/// iterable) of str, or a 2-D uint32 array that is a numpy unicode array viewed as UCS-4 code points.
fn encode(obj: &Bound<'_, PyAny>) -> PyResult<(Vec<String>, Vec<u32>)> {
    let mut names: Vec<String> = Vec::new();
    let mut by_name: FastMap<String, u32> = FastMap::default();
    let mut intern = |s: String| -> u32 {
        if let Some(&c) = by_name.get(&s) {
            return c;
        }
        let c = names.len() as u32;
        by_name.insert(s.clone(), c);
        names.push(s);
        c
    };
    if let Ok(arr) = obj.extract::<PyReadonlyArray2<'_, u32>>() {
        let width = arr.shape()[1];
        let data = arr.as_slice()?;
        let mut codes = Vec::with_capacity(arr.shape()[0]);
        if width == 0 {
            codes.resize(arr.shape()[0], intern(String::new()));
            return Ok((names, codes));
        }
        // Short Latin-1 rows (tickers, "buy"/"sell") are packed into one u64 key; others are hashed whole.
        let mut by_key: FastMap<u64, u32> = FastMap::default();
        let mut by_row: FastMap<&[u32], u32> = FastMap::default();
        for (i, row) in data.chunks_exact(width).enumerate() {
            let key = pack(row);
            let hit = match key {
                Some(k) => by_key.get(&k),
                None => by_row.get(row),
            };
            if let Some(&c) = hit {
                codes.push(c);
                continue;
            }
            let c = intern(decode(row, i)?);
            match key {
                Some(k) => by_key.insert(k, c),
                None => by_row.insert(row, c),
            };
            codes.push(c);
        }
        return Ok((names, codes));
    }
    // Equal strings are usually the same object: cache by identity first, by value second.
    let mut by_ptr: FastMap<usize, u32> = FastMap::default();
    let mut codes = Vec::with_capacity(obj.len().unwrap_or(0));
    let mut one = |i: usize, item: &Bound<'_, PyAny>| -> PyResult<()> {
        let key = item.as_ptr() as usize;
        if let Some(&c) = by_ptr.get(&key) {
            codes.push(c);
            return Ok(());
        }
        let s = item.cast::<PyString>().map_err(|_| {
            PyValueError::new_err(format!(
                "element {i} must be a str, got {}",
                item.get_type()
            ))
        })?;
        let c = intern(s.to_str()?.to_owned());
        by_ptr.insert(key, c);
        codes.push(c);
        Ok(())
    };
    if let Ok(list) = obj.cast::<PyList>() {
        for (i, item) in list.iter().enumerate() {
            one(i, &item)?;
        }
    } else {
        for (i, item) in obj.try_iter()?.enumerate() {
            one(i, &item?)?;
        }
    }
    Ok((names, codes))
}

/// Exposure manager core (Rust). Use `hybridtrader.ExposureManager`, which builds it from the config and
/// adds the calendar-aware methods; every method here is callable on it directly.
#[pyclass(frozen, subclass, module = "hybridtrader._core")]
pub struct ExposureCore {
    core: Mutex<Core>,
    ok: Py<PyString>,
    /// `refusal`'s answer per code whose reason starts with fixed words (made once, not per refusal)
    fixed_refusals: Vec<Option<Py<PyString>>>,
}

impl ExposureCore {
    #[inline]
    fn lock(&self) -> MutexGuard<'_, Core> {
        // The core never panics while holding the lock, so a poisoned lock still holds a valid state.
        self.core.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// One order's verdict, with the lock still held for its reason.
    #[inline]
    fn verdict(
        &self,
        symbol: &str,
        side: &str,
        qty: f64,
        price: f64,
        book: &str,
    ) -> PyResult<(MutexGuard<'_, Core>, Verdict)> {
        let side = parse_side(side)?;
        let core = self.lock();
        let v = core
            .check_order(symbol, side, qty, price, book)
            .map_err(value_error)?;
        Ok((core, v))
    }
}

#[pymethods]
impl ExposureCore {
    #[new]
    #[pyo3(signature = (books, max_daily_loss_pct, max_drawdown_pct, reduce_daily_loss_pct=None, reduce_drawdown_pct=None, default_shortable=true))]
    fn new(
        py: Python<'_>,
        books: Vec<BookTuple>,
        max_daily_loss_pct: f64,
        max_drawdown_pct: f64,
        reduce_daily_loss_pct: Option<f64>,
        reduce_drawdown_pct: Option<f64>,
        default_shortable: bool,
    ) -> PyResult<Self> {
        let books = books
            .into_iter()
            .map(|(name, g, n, s, sec, notional, open)| {
                let caps = BookCaps {
                    max_gross_pct: g,
                    max_net_pct: n,
                    max_symbol_pct: s,
                    max_sector_pct: sec,
                    max_order_notional: notional,
                    max_open_positions: open,
                };
                (name, caps)
            })
            .collect();
        let breaker = BreakerConfig {
            max_daily_loss_pct,
            max_drawdown_pct,
            reduce_daily_loss_pct,
            reduce_drawdown_pct,
        };
        let core = Core::new(books, breaker, default_shortable).map_err(value_error)?;
        let fixed_refusals = Code::ALL
            .iter()
            .map(|c| {
                c.fixed_head()
                    .map(|head| PyString::new(py, &refusal_key(head)).unbind())
            })
            .collect();
        Ok(ExposureCore {
            core: Mutex::new(core),
            ok: PyString::intern(py, "ok").unbind(),
            fixed_refusals,
        })
    }

    /// Short stable names of the batch reason codes, indexed by code.
    #[classattr]
    fn reason_codes() -> Vec<&'static str> {
        Code::ALL.iter().map(|c| c.name()).collect()
    }

    /// Book names, in configuration order.
    #[getter]
    fn books(&self) -> Vec<String> {
        self.lock()
            .book_names()
            .into_iter()
            .map(String::from)
            .collect()
    }

    /// Check one order against the current state: `(allowed, reason)`; reason is "ok" when allowed.
    #[pyo3(signature = (symbol, side, qty, price, book="intraday"))]
    fn check_order(
        &self,
        py: Python<'_>,
        symbol: &str,
        side: &str,
        qty: f64,
        price: f64,
        book: &str,
    ) -> PyResult<(bool, Py<PyString>)> {
        let (core, v) = self.verdict(symbol, side, qty, price, book)?;
        if v.allowed() {
            Ok((true, self.ok.clone_ref(py)))
        } else {
            let reason = core.reason(&v, symbol, book);
            Ok((false, PyString::new(py, &reason).unbind()))
        }
    }

    /// `check_order` as the engine counts a refusal: None when allowed, else "exposure: " and the reason's
    /// first two words ("exposure: gross exposure"), without building the message when those are fixed.
    /// With `count_in`, a refusal also adds 1 to `count_in[reason]` (the engine's skipped counts).
    #[pyo3(signature = (symbol, side, qty, price, book="intraday", count_in=None))]
    #[allow(clippy::too_many_arguments)]
    fn refusal(
        &self,
        py: Python<'_>,
        symbol: &str,
        side: &str,
        qty: f64,
        price: f64,
        book: &str,
        count_in: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Option<Py<PyString>>> {
        let reason = {
            let (core, v) = self.verdict(symbol, side, qty, price, book)?;
            if let Some(Some(key)) = self.fixed_refusals.get(v.code as usize) {
                Some(key.clone_ref(py))
            } else {
                core.reason_head(&v, symbol, book)
                    .map(|head| PyString::intern(py, &refusal_key(&head)).unbind())
            }
        };
        if let (Some(counts), Some(key)) = (count_in, &reason) {
            let n = match counts.get_item(key)? {
                Some(n) => n.extract::<i64>()?,
                None => 0,
            };
            counts.set_item(key, n + 1)?;
        }
        Ok(reason)
    }

    /// Dictionary-encode a column of strings (list of str, or a numpy unicode array viewed as a 2-D uint32
    /// array): `(distinct values, uint32 codes)`.
    fn encode_symbols<'py>(
        &self,
        py: Python<'py>,
        values: &Bound<'py, PyAny>,
    ) -> PyResult<(Vec<String>, Bound<'py, PyArray1<u32>>)> {
        let (names, codes) = encode(values)?;
        Ok((names, PyArray1::from_vec(py, codes)))
    }

    /// Batch check over encoded columns, GIL released: `(allowed, code)` arrays.
    #[allow(clippy::too_many_arguments)]
    fn check_batch_codes<'py>(
        &self,
        py: Python<'py>,
        book: &str,
        names: Vec<String>,
        codes: PyReadonlyArray1<'py, u32>,
        signs: PyReadonlyArray1<'py, i8>,
        qtys: PyReadonlyArray1<'py, f64>,
        prices: PyReadonlyArray1<'py, f64>,
        sequential: bool,
    ) -> PyResult<BatchOut<'py>> {
        let (codes, signs, qtys, prices) = (
            codes.as_slice()?,
            signs.as_slice()?,
            qtys.as_slice()?,
            prices.as_slice()?,
        );
        let out = py
            .detach(|| {
                let mut core = self.lock();
                let orders = Orders {
                    names: &names,
                    ids: codes,
                    signs,
                    qtys,
                    prices,
                };
                core.check_batch(book, &orders, sequential)
            })
            .map_err(value_error)?;
        let allowed: Vec<bool> = out.iter().map(|&c| c == Code::Ok as u8).collect();
        Ok((PyArray1::from_vec(py, allowed), PyArray1::from_vec(py, out)))
    }

    /// Stateless check over signed market values (see `check_exposure_limits`).
    #[pyo3(signature = (book, equity, values, existing, order_value, symbol="order"))]
    fn check_exposure_values(
        &self,
        book: &str,
        equity: f64,
        values: Vec<f64>,
        existing: Option<usize>,
        order_value: f64,
        symbol: &str,
    ) -> PyResult<(bool, String)> {
        let core = self.lock();
        let v = core
            .check_values(book, equity, &values, existing, order_value)
            .map_err(value_error)?;
        Ok((v.allowed(), core.reason(&v, symbol, book)))
    }

    /// Set the position of (book, symbol) to `qty` shares (negative: short) valued at `price`.
    pub(crate) fn update_position(
        &self,
        book: &str,
        symbol: &str,
        qty: f64,
        price: f64,
    ) -> PyResult<()> {
        self.lock()
            .update_position(book, symbol, qty, price)
            .map_err(value_error)
    }

    /// Apply a fill: the position changes by +qty (buy) or -qty (sell) and is valued at `price`.
    fn apply_fill(
        &self,
        book: &str,
        symbol: &str,
        side: &str,
        qty: f64,
        price: f64,
    ) -> PyResult<()> {
        let side = parse_side(side)?;
        self.lock()
            .apply_fill(book, symbol, side, qty, price)
            .map_err(value_error)
    }

    /// Re-mark every book's position in `symbol` at `price`.
    fn mark_price(&self, symbol: &str, price: f64) -> PyResult<()> {
        self.lock().mark_price(symbol, price).map_err(value_error)
    }

    /// `mark_price` for each (symbol, price) pair, in one call; every pair is checked first, so an error
    /// changes nothing.
    fn mark_prices(
        &self,
        symbols: Vec<PyBackedStr>,
        prices: PyReadonlyArray1<'_, f64>,
    ) -> PyResult<()> {
        self.lock()
            .mark_prices(&symbols, prices.as_slice()?)
            .map_err(value_error)
    }

    /// Remember the symbols `mark_row` marks and their columns in its rows (ids looked up once here).
    fn hold(&self, symbols: Vec<PyBackedStr>, columns: Vec<usize>) -> PyResult<()> {
        self.lock().hold(&symbols, &columns).map_err(value_error)
    }

    /// `mark_prices` of the held symbols at their columns of `row` (a bar time's closes); every pair is
    /// checked first.
    fn mark_row(&self, row: PyReadonlyArray1<'_, f64>) -> PyResult<()> {
        let row = row.as_array();
        self.lock()
            .mark_row(|c| row.get(c).copied())
            .map_err(value_error)
    }

    /// The largest whole quantity <= qty that `check_order` allows, by a binary search over its checks
    /// (exact for an order that opens or adds to a position: its allowed quantities form a prefix).
    #[pyo3(signature = (symbol, side, qty, price, book="intraday"))]
    fn max_allowed_qty(
        &self,
        symbol: &str,
        side: &str,
        qty: i64,
        price: f64,
        book: &str,
    ) -> PyResult<i64> {
        let side = parse_side(side)?;
        self.lock()
            .max_allowed_qty(symbol, side, qty, price, book)
            .map_err(value_error)
    }

    /// Account equity; caps are percentages of it.
    #[getter]
    fn equity(&self) -> f64 {
        self.lock().equity()
    }

    fn set_equity(&self, equity: f64) -> PyResult<()> {
        self.lock().set_equity(equity).map_err(value_error)
    }

    /// Assign `symbol` to `sector` (None removes it from any sector); open positions move along.
    #[pyo3(signature = (symbol, sector))]
    fn set_sector(&self, symbol: &str, sector: Option<&str>) -> PyResult<()> {
        self.lock().set_sector(symbol, sector).map_err(value_error)
    }

    /// Assign many symbols to sectors from a mapping symbol -> sector.
    fn set_sectors(&self, mapping: &Bound<'_, PyDict>) -> PyResult<()> {
        let pairs: Vec<(String, Option<String>)> = mapping
            .iter()
            .map(|(k, v)| Ok((k.extract()?, v.extract()?)))
            .collect::<PyResult<_>>()?;
        let mut core = self.lock();
        for (sym, sector) in &pairs {
            core.set_sector(sym, sector.as_deref())
                .map_err(value_error)?;
        }
        Ok(())
    }

    fn sector_of(&self, symbol: &str) -> Option<String> {
        self.lock().sector_of(symbol).map(String::from)
    }

    fn set_shortable(&self, symbol: &str, shortable: bool) -> PyResult<()> {
        self.lock()
            .set_shortable(symbol, shortable)
            .map_err(value_error)
    }

    fn is_shortable(&self, symbol: &str) -> bool {
        self.lock().is_shortable(symbol)
    }

    /// `(qty, price)` of a position; `(0.0, 0.0)` when there is none.
    fn position(&self, book: &str, symbol: &str) -> PyResult<(f64, f64)> {
        self.lock().position(book, symbol).map_err(value_error)
    }

    /// Non-zero positions of a book as `(symbol, qty, price)` tuples.
    fn positions(&self, book: &str) -> PyResult<Vec<(String, f64, f64)>> {
        let core = self.lock();
        let rows = core.positions(book).map_err(value_error)?;
        Ok(rows
            .into_iter()
            .map(|(s, q, p)| (s.to_string(), q, p))
            .collect())
    }

    /// Running metrics of a book: gross, net (account currency), their % of equity, open positions.
    fn metrics<'py>(&self, py: Python<'py>, book: &str) -> PyResult<Bound<'py, PyDict>> {
        let core = self.lock();
        let m = core.metrics(book).map_err(value_error)?;
        let eq = core.equity();
        let pct = |v: f64| if eq > 0.0 { v / eq * 100.0 } else { f64::NAN };
        let d = PyDict::new(py);
        d.set_item("gross", m.gross)?;
        d.set_item("net", m.net)?;
        d.set_item("gross_pct", pct(m.gross))?;
        d.set_item("net_pct", pct(m.net.abs()))?;
        d.set_item("open_positions", m.open_positions)?;
        Ok(d)
    }

    /// Gross exposure of a book's positions in a sector (account currency).
    fn sector_exposure(&self, book: &str, sector: &str) -> PyResult<f64> {
        self.lock().sector_gross(book, sector).map_err(value_error)
    }

    /// Remove every position of every book.
    fn clear_positions(&self) {
        self.lock().clear_positions();
    }

    /// Trading state: "ACTIVE", "REDUCING" (only risk-reducing orders) or "HALTED" (only flattening).
    #[getter]
    fn state(&self) -> &'static str {
        self.lock().state().as_str()
    }

    #[getter]
    fn state_reason(&self) -> String {
        self.lock().state_reason().to_string()
    }

    /// When the state was entered, UTC epoch nanoseconds.
    #[getter]
    fn state_since_ns(&self) -> i64 {
        self.lock().state_since_ns()
    }

    /// Set the state by hand ("ACTIVE", "REDUCING", "HALTED") with a reason.
    #[pyo3(signature = (state, reason, ts_ns=None))]
    fn set_state(&self, state: &str, reason: &str, ts_ns: Option<i64>) -> PyResult<()> {
        let s = TradingState::parse(state).ok_or_else(|| {
            PyValueError::new_err(format!(
                "state must be ACTIVE, REDUCING or HALTED, got {state:?}"
            ))
        })?;
        self.lock().set_state(s, reason, ts_ns);
        Ok(())
    }

    /// Start a session identified by `day`: the daily-loss reference becomes `equity`; state ACTIVE.
    #[pyo3(signature = (day, equity, ts_ns=None))]
    fn start_session_day(&self, day: i64, equity: f64, ts_ns: Option<i64>) -> PyResult<()> {
        self.lock()
            .start_session(day, equity, ts_ns)
            .map_err(value_error)
    }

    /// Identifier of the current session (None before the first one).
    #[getter]
    fn session_day(&self) -> Option<i64> {
        self.lock().session_day()
    }

    #[getter]
    fn session_start_equity(&self) -> f64 {
        self.lock().session_start_equity()
    }

    #[getter]
    fn peak_equity(&self) -> f64 {
        self.lock().peak_equity()
    }

    /// Record equity and evaluate the circuit breaker; true when HALTED.
    #[pyo3(signature = (equity, ts_ns=None))]
    fn update_breaker(&self, equity: f64, ts_ns: Option<i64>) -> PyResult<bool> {
        self.lock()
            .update_breaker(equity, ts_ns)
            .map_err(value_error)
    }

    /// `update_breaker` at each (equities[k], ts_ns[k]) in turn; with `stop_at_halt`, stops after the
    /// first step that finds the manager HALTED. The number of steps taken.
    fn update_breaker_path(
        &self,
        equities: PyReadonlyArray1<'_, f64>,
        ts_ns: PyReadonlyArray1<'_, i64>,
        stop_at_halt: bool,
    ) -> PyResult<usize> {
        self.lock()
            .update_breaker_path(equities.as_slice()?, ts_ns.as_slice()?, stop_at_halt)
            .map_err(value_error)
    }

    #[pyo3(signature = (day, session_start_equity, peak_equity, state, reason, since_ns))]
    fn restore_breaker(
        &self,
        day: Option<i64>,
        session_start_equity: f64,
        peak_equity: f64,
        state: &str,
        reason: &str,
        since_ns: i64,
    ) -> PyResult<()> {
        let s = TradingState::parse(state).ok_or_else(|| {
            PyValueError::new_err(format!(
                "state must be ACTIVE, REDUCING or HALTED, got {state:?}"
            ))
        })?;
        self.lock()
            .restore_breaker(day, session_start_equity, peak_equity, s, reason, since_ns)
            .map_err(value_error)
    }

    #[pyo3(signature = (ts_ns=None))]
    fn reset_at(&self, ts_ns: Option<i64>) {
        self.lock().reset(ts_ns);
    }
}
