//! PyO3 layer of the fill simulator: per-order calls, numpy batches of quotes and bars (GIL released),
//! and events / orders returned as numpy columns that `hybridtrader.execution.fills` wraps as frames.
use numpy::{PyArray1, PyReadonlyArray1};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString, PyTuple};
use std::borrow::Cow;

use super::slippage::PySlippageModel;
use crate::common::Side;
use crate::fills::{
    BarColumns, BarTimes, Fees, FillSimulator, OrderType, QuoteColumns, Request, Settings, Tif,
    NEVER,
};
use crate::orders::{Status, UpdateKind};

pyo3::import_exception!(hybridtrader.errors, DataError);

const SIDES: [Side; 2] = [Side::Buy, Side::Sell];
const TYPES: [OrderType; 4] = [
    OrderType::Market,
    OrderType::Limit,
    OrderType::Stop,
    OrderType::StopLimit,
];
const TIFS: [Tif; 6] = [Tif::Day, Tif::Gtc, Tif::Ioc, Tif::Fok, Tif::Opg, Tif::Cls];

/// Index of `x` in `all`, or `all.len()` for None (an invalid request's unparsed field).
fn code<T: PartialEq>(all: &[T], x: Option<T>) -> u8 {
    x.and_then(|x| all.iter().position(|a| *a == x))
        .unwrap_or(all.len()) as u8
}

fn values<'a, T: numpy::Element + Copy>(arr: &'a PyReadonlyArray1<'_, T>) -> Cow<'a, [T]> {
    match arr.as_slice() {
        Ok(s) => Cow::Borrowed(s),
        Err(_) => Cow::Owned(arr.as_array().iter().copied().collect()),
    }
}

type F64s<'py> = PyReadonlyArray1<'py, f64>;

/// A batch of bars held for `on_loaded_bars` (owned copies: a backtest loads a session once and feeds it
/// a bar time at a time, without handing numpy arrays over per bar time), and its bar times (`catch_up`).
#[derive(Default)]
struct LoadedBars {
    times: BarTimes,
    symbols: Vec<u32>,
    ts: Vec<i64>,
    open: Vec<f64>,
    high: Vec<f64>,
    low: Vec<f64>,
    close: Vec<f64>,
    volume: Vec<f64>,
    every_ns: i64,
}

#[pyclass(name = "FillSimulatorCore", module = "hybridtrader._core")]
pub struct PyFillSimulator {
    pub(crate) inner: FillSimulator,
    loaded: LoadedBars,
}

impl PyFillSimulator {
    /// `submit`: the order placed in the simulator, its impact from `slippage` (None: no impact); its slot.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn place(
        &mut self,
        client_order_id: &str,
        symbol: u32,
        name: &str,
        side: &str,
        order_type: &str,
        tif: &str,
        qty: f64,
        ts_ns: i64,
        limit_price: Option<f64>,
        stop_price: Option<f64>,
        slippage: Option<PyRef<'_, PySlippageModel>>,
        session_open_ns: i64,
        session_close_ns: i64,
    ) -> PyResult<u32> {
        let impact_bps = Self::impact_bps(slippage, name, side, qty, ts_ns)?;
        Ok(self.inner.submit(&Request {
            id: client_order_id,
            symbol,
            side,
            order_type,
            tif,
            qty,
            limit: limit_price,
            stop: stop_price,
            ts: ts_ns,
            impact_bps,
            session_open: session_open_ns,
            session_close: session_close_ns,
        }))
    }

    /// `on_bars` of rows `start..end` of the loaded batch.
    fn feed_loaded(&mut self, start: usize, end: usize) -> Result<(), String> {
        let b = &self.loaded;
        if start > end || end > b.symbols.len() {
            return Err(format!(
                "rows {start}..{end} of a loaded batch of {}",
                b.symbols.len()
            ));
        }
        let r = start..end;
        let cols = BarColumns {
            ts: &b.ts[r.clone()],
            open: &b.open[r.clone()],
            high: &b.high[r.clone()],
            low: &b.low[r.clone()],
            close: &b.close[r.clone()],
            volume: &b.volume[r.clone()],
        };
        self.inner.on_bars(&b.symbols[r], cols, b.every_ns)
    }

    /// The events since the last drain in time order (stable: one time's events keep the core's order),
    /// the order every reader of them applies them in.
    pub(crate) fn drain_by_time(&mut self) -> Vec<crate::fills::Event> {
        let mut events = self.inner.drain();
        events.sort_by_key(|e| e.ts); // stable
        events
    }
}

/// An order's side as the interned "buy" / "sell" ("" for an invalid request's unparsed side).
pub(crate) fn side_name<'py>(py: Python<'py>, side: Option<Side>) -> Bound<'py, PyString> {
    match side {
        Some(Side::Buy) => pyo3::intern!(py, "buy").clone(),
        Some(Side::Sell) => pyo3::intern!(py, "sell").clone(),
        None => pyo3::intern!(py, "").clone(),
    }
}

#[pymethods]
impl PyFillSimulator {
    #[new]
    #[pyo3(signature = (
        *, commission_per_share, commission_min, sec_fee_rate, taf_per_share, taf_cap,
        entry_latency_ns, ack_latency_ns, bar_participation
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        commission_per_share: f64,
        commission_min: f64,
        sec_fee_rate: f64,
        taf_per_share: f64,
        taf_cap: f64,
        entry_latency_ns: i64,
        ack_latency_ns: i64,
        bar_participation: f64,
    ) -> PyResult<Self> {
        let settings = Settings {
            fees: Fees {
                commission_per_share,
                commission_min,
                sec_fee_rate,
                taf_per_share,
                taf_cap,
            },
            entry_latency_ns,
            ack_latency_ns,
            bar_participation,
        };
        let inner =
            FillSimulator::new(settings).map_err(|e| PyValueError::new_err(e.to_string()))?;
        Ok(Self {
            inner,
            loaded: LoadedBars::default(),
        })
    }

    /// Names behind the integer codes of `drain` and `orders`, in code order.
    #[classattr]
    #[pyo3(name = "EVENT_KINDS")]
    fn event_kinds() -> Vec<&'static str> {
        UpdateKind::ALL.iter().map(|k| k.name()).collect()
    }
    #[classattr]
    #[pyo3(name = "STATUSES")]
    fn statuses() -> Vec<&'static str> {
        Status::ALL.iter().map(|k| k.alpaca_name()).collect()
    }
    #[classattr]
    #[pyo3(name = "SIDES")]
    fn sides() -> Vec<&'static str> {
        SIDES.iter().map(|k| k.as_str()).collect()
    }
    #[classattr]
    #[pyo3(name = "TYPES")]
    fn types() -> Vec<&'static str> {
        TYPES.iter().map(|k| k.as_str()).collect()
    }
    #[classattr]
    #[pyo3(name = "TIFS")]
    fn tifs() -> Vec<&'static str> {
        TIFS.iter().map(|k| k.as_str()).collect()
    }

    /// Submit one order of symbol `name` (code `symbol`); returns its slot. Invalid requests become a
    /// "rejected" event. Its impact comes from `slippage` (`impact_bps`; None: no impact).
    #[pyo3(signature = (
        client_order_id, symbol, name, side, order_type, tif, qty, ts_ns, limit_price, stop_price,
        slippage, session_open_ns, session_close_ns
    ))]
    #[allow(clippy::too_many_arguments)]
    fn submit(
        &mut self,
        client_order_id: &str,
        symbol: u32,
        name: &str,
        side: &str,
        order_type: &str,
        tif: &str,
        qty: f64,
        ts_ns: i64,
        limit_price: Option<f64>,
        stop_price: Option<f64>,
        slippage: Option<PyRef<'_, PySlippageModel>>,
        session_open_ns: i64,
        session_close_ns: i64,
    ) -> PyResult<u32> {
        self.place(
            client_order_id,
            symbol,
            name,
            side,
            order_type,
            tif,
            qty,
            ts_ns,
            limit_price,
            stop_price,
            slippage,
            session_open_ns,
            session_close_ns,
        )
    }

    /// Impact (bps) of `qty` shares of `symbol` sent at `ts_ns` from the slippage model
    /// (`fills::impact_bps` of its forecasts); 0 without a model, or for an invalid side or quantity (the
    /// simulator rejects such a request: it never trades).
    #[staticmethod]
    pub(crate) fn impact_bps(
        slippage: Option<PyRef<'_, PySlippageModel>>,
        symbol: &str,
        side: &str,
        qty: f64,
        ts_ns: i64,
    ) -> PyResult<f64> {
        match slippage {
            Some(m) if Side::parse(side).is_some() && qty.is_finite() && qty > 0.0 => {
                m.impact_bps(symbol, qty, ts_ns)
            }
            _ => Ok(0.0),
        }
    }

    /// Ask to cancel; False when no open order has that id.
    fn cancel(&mut self, client_order_id: &str, ts_ns: i64) -> bool {
        self.inner.cancel(client_order_id, ts_ns)
    }

    /// Ask to replace; the new order's slot, or None when no open order has that id.
    #[pyo3(signature = (client_order_id, new_client_order_id, ts_ns, qty, limit_price, stop_price, impact_bps))]
    #[allow(clippy::too_many_arguments)]
    fn replace(
        &mut self,
        client_order_id: &str,
        new_client_order_id: &str,
        ts_ns: i64,
        qty: Option<f64>,
        limit_price: Option<f64>,
        stop_price: Option<f64>,
        impact_bps: f64,
    ) -> Option<u32> {
        self.inner.replace(
            client_order_id,
            new_client_order_id,
            ts_ns,
            qty,
            limit_price,
            stop_price,
            impact_bps,
        )
    }

    fn advance(&mut self, ts_ns: i64) {
        self.inner.advance(ts_ns)
    }

    /// Fees (USD) of one fill of `qty` at `price` on an order that had filled `before` shares: the rule
    /// the simulator charges, for fills made elsewhere (a live broker's).
    fn fill_fee(&self, side: &str, before: f64, qty: f64, price: f64) -> PyResult<f64> {
        let side = Side::parse(side).ok_or_else(|| {
            PyValueError::new_err(format!("side must be buy or sell, got {side:?}"))
        })?;
        Ok(self
            .inner
            .settings()
            .fees
            .fill_fee(side, before, qty, price))
    }

    /// The slot of an order id, or None.
    fn slot(&self, client_order_id: &str) -> Option<u32> {
        self.inner.slot(client_order_id)
    }

    /// One order by client id as a dict (symbol as its code; prices None when absent), or None.
    fn order<'py>(
        &self,
        py: Python<'py>,
        client_order_id: &str,
    ) -> PyResult<Option<Bound<'py, PyDict>>> {
        let Some(slot) = self.inner.slot(client_order_id) else {
            return Ok(None);
        };
        let o = self.inner.order(slot);
        let d = PyDict::new(py);
        d.set_item("client_order_id", &o.id)?;
        d.set_item("symbol", o.symbol)?;
        d.set_item("side", o.side.map_or("", Side::as_str))?;
        d.set_item("type", o.order_type.map_or("", OrderType::as_str))?;
        d.set_item("tif", o.tif.map_or("", Tif::as_str))?;
        d.set_item("qty", o.qty)?;
        d.set_item("filled_qty", o.filled)?;
        d.set_item("limit_price", o.limit)?;
        d.set_item("stop_price", o.stop)?;
        d.set_item("status", o.status.alpaca_name())?;
        d.set_item("filled_avg_price", o.avg_price())?;
        d.set_item("fees", o.fees)?;
        d.set_item("submitted_at", o.submitted)?;
        d.set_item("expires_at", (o.expires != NEVER).then_some(o.expires))?;
        Ok(Some(d))
    }

    /// (bid, ask) of the last quote seen for a symbol code, or None.
    fn last_quote(&self, symbol: u32) -> Option<(f64, f64)> {
        self.inner.last_quote(symbol).map(|q| (q.bid, q.ask))
    }

    /// Quote rows in time order as columns; the GIL is released for the matching.
    #[allow(clippy::too_many_arguments)]
    fn on_quotes(
        &mut self,
        py: Python<'_>,
        symbols: PyReadonlyArray1<'_, u32>,
        ts: PyReadonlyArray1<'_, i64>,
        bid: F64s<'_>,
        ask: F64s<'_>,
        bid_size: F64s<'_>,
        ask_size: F64s<'_>,
    ) -> PyResult<()> {
        let (sym, ts, bid, ask) = (values(&symbols), values(&ts), values(&bid), values(&ask));
        let (bs, asz) = (values(&bid_size), values(&ask_size));
        let cols = QuoteColumns {
            ts: &ts,
            bid: &bid,
            ask: &ask,
            bid_size: &bs,
            ask_size: &asz,
        };
        let sim = &mut self.inner;
        py.detach(|| sim.on_quotes(&sym, cols))
            .map_err(PyValueError::new_err)
    }

    /// Bar rows (ts = bar start) in time order as columns; then time moves to the last bar's end.
    #[allow(clippy::too_many_arguments)]
    fn on_bars(
        &mut self,
        py: Python<'_>,
        symbols: PyReadonlyArray1<'_, u32>,
        ts: PyReadonlyArray1<'_, i64>,
        open: F64s<'_>,
        high: F64s<'_>,
        low: F64s<'_>,
        close: F64s<'_>,
        volume: F64s<'_>,
        every_ns: i64,
    ) -> PyResult<()> {
        let (sym, ts, o, h) = (values(&symbols), values(&ts), values(&open), values(&high));
        let (l, c, v) = (values(&low), values(&close), values(&volume));
        let cols = BarColumns {
            ts: &ts,
            open: &o,
            high: &h,
            low: &l,
            close: &c,
            volume: &v,
        };
        let sim = &mut self.inner;
        py.detach(|| sim.on_bars(&sym, cols, every_ns))
            .map_err(PyValueError::new_err)
    }

    /// Hold a batch of bar rows (as `on_bars` takes them) for `on_loaded_bars`, replacing the last one.
    #[allow(clippy::too_many_arguments)]
    fn load_bars(
        &mut self,
        symbols: PyReadonlyArray1<'_, u32>,
        ts: PyReadonlyArray1<'_, i64>,
        open: F64s<'_>,
        high: F64s<'_>,
        low: F64s<'_>,
        close: F64s<'_>,
        volume: F64s<'_>,
        every_ns: i64,
    ) {
        let ts = values(&ts).into_owned();
        self.loaded = LoadedBars {
            times: BarTimes::new(&ts, every_ns),
            symbols: values(&symbols).into_owned(),
            ts,
            open: values(&open).into_owned(),
            high: values(&high).into_owned(),
            low: values(&low).into_owned(),
            close: values(&close).into_owned(),
            volume: values(&volume).into_owned(),
            every_ns,
        };
    }

    /// `on_bars` of rows `start..end` of the loaded batch.
    fn on_loaded_bars(&mut self, start: usize, end: usize) -> PyResult<()> {
        self.feed_loaded(start, end).map_err(PyValueError::new_err)
    }

    /// `on_loaded_bars` of the loaded bar times closed by `now_ns` and not fed yet; with `feed` false (no
    /// order open: nothing to match) they are passed over instead, never to be fed. DataError ("bars:
    /// ...") for bars the simulator refuses.
    pub(crate) fn catch_up(&mut self, now_ns: i64, feed: bool) -> PyResult<()> {
        let rows = self.loaded.times.take_closed(now_ns);
        if feed && !rows.is_empty() {
            self.feed_loaded(rows.start, rows.end)
                .map_err(|e| DataError::new_err(format!("bars: {e}")))?;
        }
        Ok(())
    }

    /// Events since the last drain in time order (stable: one time's events keep their order), each
    /// as `make((ts, client_order_id, symbol, side, kind, qty, price, fee, filled_qty, leaves_qty,
    /// reason))` with `symbol` = `names[code]` ("" past its end), and how many of them end an order.
    fn drain_updates<'py>(
        &mut self,
        py: Python<'py>,
        names: &Bound<'py, PyList>,
        make: &Bound<'py, PyAny>,
    ) -> PyResult<(Bound<'py, PyList>, usize)> {
        let events = self.drain_by_time();
        let orders = self.inner.orders();
        let kind_names: Vec<Bound<'py, PyString>> = UpdateKind::ALL
            .iter()
            .map(|k| PyString::new(py, k.name()))
            .collect();
        let blank = PyString::new(py, "");
        let out = PyList::empty(py);
        let mut terminal = 0;
        for e in &events {
            let o = &orders[e.order as usize];
            let symbol = match names.get_item(o.symbol as usize) {
                Ok(name) => name,
                Err(_) => blank.clone().into_any(),
            };
            let side = side_name(py, o.side);
            terminal +=
                usize::from(e.kind != UpdateKind::Accepted && e.kind != UpdateKind::PartialFill);
            let row = (
                e.ts,
                o.id.as_str(),
                symbol,
                side,
                &kind_names[code(&UpdateKind::ALL, Some(e.kind)) as usize],
                e.qty,
                e.price,
                e.fee,
                e.filled,
                e.leaves,
                e.reason.as_str(),
            );
            out.append(make.call1((row,))?)?;
        }
        Ok((out, terminal))
    }

    /// Events since the last drain in time order (stable: one time's events keep their order) as (ts,
    /// slot, symbol, side, kind, qty, price, fee, filled, leaves) numpy columns, the client ids and the
    /// reasons (lists).
    fn drain<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        let events = self.drain_by_time();
        let orders = self.inner.orders();
        let col = |f: &dyn Fn(&crate::fills::Event) -> f64| -> Vec<f64> {
            events.iter().map(f).collect()
        };
        let ts: Vec<i64> = events.iter().map(|e| e.ts).collect();
        let slot: Vec<u32> = events.iter().map(|e| e.order).collect();
        let symbol: Vec<u32> = events
            .iter()
            .map(|e| orders[e.order as usize].symbol)
            .collect();
        let side: Vec<u8> = events
            .iter()
            .map(|e| code(&SIDES, orders[e.order as usize].side))
            .collect();
        let kind: Vec<u8> = events
            .iter()
            .map(|e| code(&UpdateKind::ALL, Some(e.kind)))
            .collect();
        let ids = PyList::new(
            py,
            events.iter().map(|e| orders[e.order as usize].id.as_str()),
        )?;
        let reasons = PyList::new(py, events.iter().map(|e| e.reason.as_str()))?;
        let items: Vec<Bound<'py, PyAny>> = vec![
            PyArray1::from_vec(py, ts).into_any(),
            PyArray1::from_vec(py, slot).into_any(),
            PyArray1::from_vec(py, symbol).into_any(),
            PyArray1::from_vec(py, side).into_any(),
            PyArray1::from_vec(py, kind).into_any(),
            PyArray1::from_vec(py, col(&|e| e.qty)).into_any(),
            PyArray1::from_vec(py, col(&|e| e.price)).into_any(),
            PyArray1::from_vec(py, col(&|e| e.fee)).into_any(),
            PyArray1::from_vec(py, col(&|e| e.filled)).into_any(),
            PyArray1::from_vec(py, col(&|e| e.leaves)).into_any(),
            ids.into_any(),
            reasons.into_any(),
        ];
        PyTuple::new(py, items)
    }

    /// Signed shares filled per symbol code (numpy float64, indexed by code; see the core's).
    fn filled_shares<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<f64>> {
        PyArray1::from_vec(py, self.inner.filled_shares())
    }

    /// Orders (all, or only open ones) as (slot, symbol, side, type, tif, qty, filled, limit, stop,
    /// status, avg_price, fees, submitted, expires) numpy columns and the client ids (list). Missing
    /// prices are NaN; `expires` is -1 for gtc.
    #[pyo3(signature = (open_only=true))]
    fn orders<'py>(&self, py: Python<'py>, open_only: bool) -> PyResult<Bound<'py, PyTuple>> {
        let rows: Vec<(u32, &crate::fills::Order)> = self
            .inner
            .orders()
            .iter()
            .enumerate()
            .filter(|(_, o)| !open_only || o.status.is_open())
            .map(|(i, o)| (i as u32, o))
            .collect();
        let f = |g: &dyn Fn(&crate::fills::Order) -> f64| -> Vec<f64> {
            rows.iter().map(|(_, o)| g(o)).collect()
        };
        let nan = f64::NAN;
        let items: Vec<Bound<'py, PyAny>> = vec![
            PyArray1::from_vec(py, rows.iter().map(|(i, _)| *i).collect::<Vec<u32>>()).into_any(),
            PyArray1::from_vec(py, rows.iter().map(|(_, o)| o.symbol).collect::<Vec<u32>>())
                .into_any(),
            PyArray1::from_vec(
                py,
                rows.iter()
                    .map(|(_, o)| code(&SIDES, o.side))
                    .collect::<Vec<u8>>(),
            )
            .into_any(),
            PyArray1::from_vec(
                py,
                rows.iter()
                    .map(|(_, o)| code(&TYPES, o.order_type))
                    .collect::<Vec<u8>>(),
            )
            .into_any(),
            PyArray1::from_vec(
                py,
                rows.iter()
                    .map(|(_, o)| code(&TIFS, o.tif))
                    .collect::<Vec<u8>>(),
            )
            .into_any(),
            PyArray1::from_vec(py, f(&|o| o.qty)).into_any(),
            PyArray1::from_vec(py, f(&|o| o.filled)).into_any(),
            PyArray1::from_vec(py, f(&|o| o.limit.unwrap_or(nan))).into_any(),
            PyArray1::from_vec(py, f(&|o| o.stop.unwrap_or(nan))).into_any(),
            PyArray1::from_vec(
                py,
                rows.iter()
                    .map(|(_, o)| code(&Status::ALL, Some(o.status)))
                    .collect::<Vec<u8>>(),
            )
            .into_any(),
            PyArray1::from_vec(py, f(&|o| o.avg_price().unwrap_or(nan))).into_any(),
            PyArray1::from_vec(py, f(&|o| o.fees)).into_any(),
            PyArray1::from_vec(
                py,
                rows.iter().map(|(_, o)| o.submitted).collect::<Vec<i64>>(),
            )
            .into_any(),
            PyArray1::from_vec(
                py,
                rows.iter()
                    .map(|(_, o)| if o.expires == NEVER { -1 } else { o.expires })
                    .collect::<Vec<i64>>(),
            )
            .into_any(),
            PyList::new(py, rows.iter().map(|(_, o)| o.id.as_str()))?.into_any(),
        ];
        PyTuple::new(py, items)
    }
}
