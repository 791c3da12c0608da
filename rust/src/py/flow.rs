//! PyO3 layer of the engine's order flow (`crate::flow`): `OrderFlowCore`, which the `Trader` sends its
//! orders through and books every broker update with (`apply`, or `poll_simulator` straight from the
//! backtest's fill simulator: no `OrderUpdate` made). It keeps the orders by client order id with the open
//! ones by (strategy, symbol) (Python dicts, read in place), books fills into the ledger, the account's
//! shares of the batch and the fill rows (columns), teaches the slippage model each fill, and keeps the
//! exposure manager's position of each (book, symbol) at its filled plus pending shares.
use numpy::{PyArray1, PyArray2, PyArrayMethods};
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString, PyTuple};
use pyo3::{intern, PyTraverseError, PyVisit};

use super::exposure::ExposureCore;
use super::fills::{side_name, PyFillSimulator};
use super::ledger::PyLedger;
use super::orders::{PyOrder, U_CID, U_FEE, U_KIND, U_PRICE, U_QTY, U_SIDE, U_SYMBOL, U_TS};
use super::slippage::PySlippageModel;
use crate::common::Side;
use crate::flow::BookShares;
use crate::orders::{client_order_id, Update, UpdateKind};

pyo3::import_exception!(hybridtrader.errors, StateError);

/// Where `OrderFlowCore.submit` also places an order: (fill simulator, the symbol's code there, the
/// model of its impact or None, session open, session close), as `FillSimulatorCore.submit` takes them,
/// and whether the simulator has orders open (its `catch_up` first: bars closed before the order exists
/// are not for it).
type Placement<'py> = (
    Bound<'py, PyFillSimulator>,
    u32,
    Option<Bound<'py, PySlippageModel>>,
    i64,
    i64,
    bool,
);

/// The fills booked, as the fill frame's columns (realized_bps is computed from `sign` with the frame).
#[derive(Default)]
struct FillColumns {
    ts: Vec<i64>,
    text: [Vec<Py<PyString>>; 5], // client_order_id, strategy, book, symbol, side
    numbers: [Vec<f64>; 6],       // qty, price, fee, realized_pnl, decision_price, forecast_bps
    sign: Vec<i64>,
}

#[pyclass(name = "OrderFlowCore", module = "hybridtrader._core")]
pub struct PyOrderFlow {
    /// client order id -> Order: every order sent and not yet forgotten by the engine.
    #[pyo3(get)]
    orders: Py<PyDict>,
    /// client order id -> Order, the open ones.
    #[pyo3(get)]
    open: Py<PyDict>,
    /// (strategy, symbol) -> {client order id -> Order}: the open ones, each group in the order sent.
    #[pyo3(get)]
    open_by: Py<PyDict>,
    /// client order id -> rank in the order of sending.
    #[pyo3(get)]
    sent: Py<PyDict>,
    /// When a dict: each (book, symbol) whose pending exposure moved -> an order of it (to price again).
    #[pyo3(get, set)]
    repricing: Option<Py<PyDict>>,
    ledger: Py<PyLedger>,
    exposure: Py<ExposureCore>,
    slippage: Py<PySlippageModel>,
    /// symbol -> its price (NaN: none) when no batch gave closes; None once cleared by the collector.
    price: Option<Py<PyAny>>,
    /// The batch's symbol -> column, and the account's shares per column (None before a batch).
    batch: Option<(Py<PyDict>, Py<PyArray1<f64>>)>,
    /// The batch's closes (bar time x column; NaN: no bar yet), when given: prices come from its row
    /// `row` (see `price`).
    closes: Option<Py<PyArray2<f64>>>,
    /// The bar time of the batch the engine is at (a row of `closes`).
    #[pyo3(get, set)]
    row: usize,
    shares: BookShares,
    n_sent: u64,
    fills: FillColumns,
}

impl PyOrderFlow {
    /// Record a sent order: by id, as open, its rank, and its shares as pending exposure valued at
    /// `price` (None: the current price).
    fn send_order(
        &mut self,
        py: Python<'_>,
        order: &Bound<'_, PyOrder>,
        price: Option<f64>,
    ) -> PyResult<()> {
        let (cid, delta) = {
            let o = order.borrow();
            (o.client_order_id.clone_ref(py), o.sign as f64 * o.state.qty)
        };
        self.orders.bind(py).set_item(&cid, order)?;
        self.opened(py, order)?;
        self.sent.bind(py).set_item(&cid, self.n_sent)?;
        self.n_sent += 1;
        self.add_pending_of(py, order, delta, price)
    }

    fn opened(&self, py: Python<'_>, order: &Bound<'_, PyOrder>) -> PyResult<()> {
        let o = order.borrow();
        let cid = o.client_order_id.bind(py);
        self.open.bind(py).set_item(cid, order)?;
        let key = PyTuple::new(py, [o.strategy.bind(py), o.symbol.bind(py)])?;
        let open_by = self.open_by.bind(py);
        match open_by.get_item(&key)? {
            Some(group) => group.cast::<PyDict>()?.set_item(cid, order),
            None => {
                let group = PyDict::new(py);
                group.set_item(cid, order)?;
                open_by.set_item(key, group)
            }
        }
    }

    /// Forget an order that reached a terminal state (it is open no more).
    fn closed(&self, py: Python<'_>, order: &Bound<'_, PyOrder>) -> PyResult<()> {
        let o = order.borrow();
        let cid = o.client_order_id.bind(py);
        let open = self.open.bind(py);
        if !open.contains(cid)? {
            return Ok(());
        }
        open.del_item(cid)?;
        let key = PyTuple::new(py, [o.strategy.bind(py), o.symbol.bind(py)])?;
        let open_by = self.open_by.bind(py);
        if let Some(group) = open_by.get_item(&key)? {
            let group = group.cast_into::<PyDict>()?;
            group.del_item(cid)?;
            if group.is_empty() {
                open_by.del_item(&key)?;
            }
        }
        Ok(())
    }

    /// Exposure of (book, symbol) = filled shares + open orders' remaining signed shares, valued at
    /// `price` (None: the current price; NaN: the order's decision price).
    fn add_pending_of(
        &mut self,
        py: Python<'_>,
        order: &Bound<'_, PyOrder>,
        delta: f64,
        price: Option<f64>,
    ) -> PyResult<()> {
        let o = order.borrow();
        let (book, symbol) = (o.book.bind(py), o.symbol.bind(py));
        if let Some(repricing) = &self.repricing {
            repricing
                .bind(py)
                .set_item(PyTuple::new(py, [book, symbol])?, order)?;
        }
        let shares = self
            .shares
            .add_pending(book.to_str()?, symbol.to_str()?, delta);
        let price = match price {
            Some(p) => p,
            None => self.current_price(symbol)?,
        };
        let price = if price.is_nan() {
            o.decision_price
        } else {
            price
        };
        self.exposure
            .get()
            .update_position(book.to_str()?, symbol.to_str()?, shares, price)
    }

    fn current_price(&self, symbol: &Bound<'_, PyString>) -> PyResult<f64> {
        let py = symbol.py();
        if let (Some((index, _)), Some(closes)) = (&self.batch, &self.closes) {
            if let Some(j) = index.bind(py).get_item(symbol)? {
                let j: usize = j.extract()?;
                // SAFETY: the GIL is held and the view ends with this line (as for `pos` in `book_fill`)
                let px = match unsafe { closes.bind(py).get([self.row, j]) } {
                    Some(&px) => px,
                    None => {
                        return Err(StateError::new_err(format!(
                            "order flow: no close at bar time {} column {j}",
                            self.row
                        )))
                    }
                };
                if !px.is_nan() {
                    return Ok(px);
                }
            }
            let ledger = self.ledger.bind(py).borrow();
            return match ledger.marks.bind(py).get_item(symbol)? {
                Some(mark) => mark.extract(),
                None => Ok(f64::NAN),
            };
        }
        let Some(price) = &self.price else {
            return Err(StateError::new_err("order flow: used after it was cleared"));
        };
        price.bind(py).call1((symbol,))?.extract()
    }

    /// Book a fill of `order` (of `symbol`, `side` as the update says): the ledger, the batch's shares,
    /// the filled exposure, the slippage model and a fill row.
    fn book_fill(
        &mut self,
        py: Python<'_>,
        order: &Bound<'_, PyOrder>,
        symbol: &Bound<'_, PyString>,
        side: &Bound<'_, PyAny>,
        fill: &Update,
    ) -> PyResult<()> {
        let o = order.borrow();
        let realized = self.ledger.bind(py).borrow_mut().book_fill(
            o.strategy.bind(py),
            symbol,
            side,
            fill.qty,
            fill.price,
            fill.fee,
        )?;
        let signed = o.sign as f64 * fill.qty;
        if let Some((index, pos)) = &self.batch {
            if let Some(j) = index.bind(py).get_item(symbol)? {
                let j: usize = j.extract()?;
                // SAFETY: the GIL is held and no Rust view of `pos` outlives this line (numpy's borrow
                // tracking, a shared table per array access, costs more than the fill's booking)
                match unsafe { pos.bind(py).get_mut([j]) } {
                    Some(shares) => *shares += signed,
                    None => return Err(StateError::new_err(format!("order flow: no column {j}"))),
                }
            }
        }
        let name = symbol.to_str()?;
        self.shares.fill(o.book.bind(py).to_str()?, name, signed);
        // the ledger accepted the side: "buy" or "sell"
        let buy = side.eq(intern!(py, "buy"))?;
        self.slippage.bind(py).borrow_mut().learn_fill(
            name,
            if buy { Side::Buy } else { Side::Sell },
            fill.qty,
            o.decision_price,
            fill.price,
            fill.ts_ns,
        )?;
        let f = &mut self.fills;
        f.ts.push(fill.ts_ns);
        let text = [
            o.client_order_id.clone_ref(py),
            o.strategy.clone_ref(py),
            o.book.clone_ref(py),
            symbol.clone().unbind(),
            side.cast::<PyString>()?.clone().unbind(),
        ];
        for (column, value) in f.text.iter_mut().zip(text) {
            column.push(value);
        }
        let numbers = [
            fill.qty,
            fill.price,
            fill.fee,
            realized,
            o.decision_price,
            o.forecast_bps,
        ];
        for (column, value) in f.numbers.iter_mut().zip(numbers) {
            column.push(value);
        }
        f.sign.push(o.sign);
        Ok(())
    }

    /// After an update that moved `order`'s remaining shares by `change`: its pending exposure, and its
    /// place among the open orders.
    fn settle(&mut self, py: Python<'_>, order: &Bound<'_, PyOrder>, change: f64) -> PyResult<()> {
        if change != 0.0 {
            let sign = order.borrow().sign as f64;
            self.add_pending_of(py, order, sign * change, None)?;
        }
        if !order.borrow().is_open() {
            self.closed(py, order)?;
        }
        Ok(())
    }

    fn order_of<'py>(
        &self,
        cid: &Bound<'py, PyAny>,
        kind: &dyn std::fmt::Display,
    ) -> PyResult<Bound<'py, PyOrder>> {
        match self.orders.bind(cid.py()).get_item(cid)? {
            Some(order) => Ok(order.cast_into::<PyOrder>()?),
            None => Err(StateError::new_err(format!(
                "broker update for unknown order {cid} ({kind})"
            ))),
        }
    }

    fn columns<'py>(&self, py: Python<'py>, start: usize) -> PyResult<Bound<'py, PyTuple>> {
        let f = &self.fills;
        let start = start.min(f.ts.len());
        let text = f
            .text
            .iter()
            .map(|c| PyList::new(py, c[start..].iter().map(|s| s.bind(py))))
            .collect::<PyResult<Vec<_>>>()?;
        let numbers = f
            .numbers
            .iter()
            .map(|c| PyArray1::from_slice(py, &c[start..]));
        (
            PyArray1::from_slice(py, &f.ts[start..]),
            PyTuple::new(py, text)?,
            PyTuple::new(py, numbers)?,
            PyArray1::from_slice(py, &f.sign[start..]),
        )
            .into_pyobject(py)
    }
}

#[pymethods]
impl PyOrderFlow {
    /// Books into `ledger`, `exposure` and `slippage`; `price(symbol)` is the engine's current price of a
    /// symbol (NaN: none), at which pending exposure is valued, until a batch gives its closes.
    #[new]
    fn new(
        py: Python<'_>,
        ledger: Py<PyLedger>,
        exposure: Py<ExposureCore>,
        slippage: Py<PySlippageModel>,
        price: Py<PyAny>,
    ) -> Self {
        PyOrderFlow {
            orders: PyDict::new(py).unbind(),
            open: PyDict::new(py).unbind(),
            open_by: PyDict::new(py).unbind(),
            sent: PyDict::new(py).unbind(),
            repricing: None,
            ledger,
            exposure,
            slippage,
            price: Some(price),
            batch: None,
            closes: None,
            row: 0,
            shares: BookShares::default(),
            n_sent: 0,
            fills: FillColumns::default(),
        }
    }

    /// A new batch: its symbol -> column `index`, and `pos`, the account's shares per column, which fills
    /// move from now on; with `closes` (bar time x column), prices come from them from now on (`price`).
    #[pyo3(signature = (index, pos, closes=None))]
    fn start_batch(
        &mut self,
        index: Py<PyDict>,
        pos: Py<PyArray1<f64>>,
        closes: Option<Py<PyArray2<f64>>>,
    ) {
        self.batch = Some((index, pos));
        self.closes = closes;
    }

    /// The current price of `symbol`: with a batch's closes, the close at bar time `row` of its column,
    /// else (no column, or NaN: no bar yet) the ledger's mark, else NaN; without closes, the `price`
    /// given at construction.
    fn price(&self, symbol: &Bound<'_, PyString>) -> PyResult<f64> {
        self.current_price(symbol)
    }

    /// Send an order of `strategy` (in `book`) for `leg` decided at `now_ns` against the `reference`
    /// price: its client order id, the slippage model's forecast, the order, recorded as sent with its
    /// shares pending at `price` (NaN: the reference). StateError when the id was sent already. With
    /// `to` = (simulator, the symbol's code, its impact model or None, session open, session close), the
    /// order is also placed in that fill simulator (as `FillSimulatorCore.submit`).
    #[pyo3(signature = (strategy, book, leg, request, now_ns, reference, price, to=None))]
    #[allow(clippy::too_many_arguments)]
    fn submit<'py>(
        &mut self,
        py: Python<'py>,
        strategy: Bound<'py, PyString>,
        book: Bound<'py, PyString>,
        leg: Bound<'py, PyString>,
        request: Bound<'py, PyAny>,
        now_ns: i64,
        reference: f64,
        price: f64,
        to: Option<Placement<'py>>,
    ) -> PyResult<Bound<'py, PyString>> {
        if let Some((sim, _, _, _, _, feed)) = &to {
            sim.borrow_mut().catch_up(now_ns, *feed)?;
        }
        let symbol = request
            .getattr(intern!(py, "symbol"))?
            .cast_into::<PyString>()?;
        let id = client_order_id(strategy.to_str()?, symbol.to_str()?, now_ns, leg.to_str()?);
        let cid = PyString::new(py, &id);
        if self.orders.bind(py).contains(&cid)? {
            return Err(StateError::new_err(format!(
                "strategy {strategy}: a second order for leg {} of {symbol} at {now_ns}",
                leg.repr()?
            )));
        }
        let side = request.getattr(intern!(py, "side"))?;
        let qty: f64 = request.getattr(intern!(py, "qty"))?.extract()?;
        let forecast = self.slippage.bind(py).borrow().forecast_at(
            symbol.to_str()?,
            side.cast::<PyString>()?.to_str()?,
            qty,
            reference,
            now_ns,
        )?;
        let order = PyOrder::new(
            py,
            cid.clone().unbind(),
            strategy.unbind(),
            book.unbind(),
            leg.unbind(),
            request,
            now_ns,
            reference,
            forecast,
            "new",
            0.0,
            0.0,
            0.0,
            now_ns,
            None,
            None,
        )?;
        let order = Bound::new(py, order)?;
        self.send_order(py, &order, Some(price))?;
        if let Some((sim, code, impact, open_ns, close_ns, _)) = to {
            let r = order.borrow();
            let request = r.request.bind(py);
            let text = |name: &Bound<'py, PyString>| -> PyResult<String> {
                Ok(request
                    .getattr(name)?
                    .cast::<PyString>()?
                    .to_str()?
                    .to_owned())
            };
            let price_of = |name: &Bound<'py, PyString>| request.getattr(name)?.extract();
            sim.borrow_mut().place(
                &id,
                code,
                symbol.to_str()?,
                side.cast::<PyString>()?.to_str()?,
                &text(intern!(py, "type"))?,
                &text(intern!(py, "time_in_force"))?,
                qty,
                now_ns,
                price_of(intern!(py, "limit_price"))?,
                price_of(intern!(py, "stop_price"))?,
                impact.as_ref().map(|m| m.borrow()),
                open_ns,
                close_ns,
            )?;
        }
        Ok(cid)
    }

    /// Record an order made elsewhere (a replacement, an order known again after a restart) as sent:
    /// by id, open, ranked, its shares pending at the current price.
    fn send(&mut self, order: &Bound<'_, PyOrder>) -> PyResult<()> {
        self.send_order(order.py(), order, None)
    }

    /// `order`'s pending shares moved by `delta` (0: priced again), valued at `price` (None: the
    /// current price; NaN: the order's decision price).
    #[pyo3(signature = (order, delta, price=None))]
    fn add_pending(
        &mut self,
        order: &Bound<'_, PyOrder>,
        delta: f64,
        price: Option<f64>,
    ) -> PyResult<()> {
        self.add_pending_of(order.py(), order, delta, price)
    }

    /// `strategy`'s open orders in `symbol`, in the order sent (a new list).
    fn open_orders<'py>(
        &self,
        py: Python<'py>,
        strategy: &Bound<'py, PyAny>,
        symbol: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyList>> {
        let key = PyTuple::new(py, [strategy, symbol])?;
        match self.open_by.bind(py).get_item(key)? {
            Some(group) => Ok(group.cast::<PyDict>()?.values()),
            None => Ok(PyList::empty(py)),
        }
    }

    /// The signed shares `strategy`'s open orders in `symbol` have still to fill (buys +, sells -),
    /// summed in the order sent.
    fn open_shares(&self, strategy: &Bound<'_, PyAny>, symbol: &Bound<'_, PyAny>) -> PyResult<f64> {
        let py = strategy.py();
        let key = PyTuple::new(py, [strategy, symbol])?;
        let mut shares = 0.0;
        if let Some(group) = self.open_by.bind(py).get_item(key)? {
            for order in group.cast::<PyDict>()?.values().iter() {
                let o = order.cast::<PyOrder>()?.borrow();
                shares += o.sign as f64 * o.state.leaves_qty();
            }
        }
        Ok(shares)
    }

    /// Book one broker update (an `OrderUpdate`): its order's state, and for a fill the ledger, shares,
    /// slippage model and fill row; then the pending exposure and the open orders. The order; StateError
    /// for an unknown order or an illegal update.
    fn apply<'py>(&mut self, update: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyOrder>> {
        let py = update.py();
        let u = update.cast::<PyTuple>().map_err(|_| {
            PyTypeError::new_err(format!("order update must be an OrderUpdate, got {update}"))
        })?;
        let order = self.order_of(&u.get_item(U_CID)?, &u.get_item(U_KIND)?)?;
        let change = order.borrow_mut().apply(update)?;
        let kind = order.borrow().last_kind().expect("an update was applied");
        if kind == UpdateKind::Accepted {
            return Ok(order); // the common ack: only the state moved
        }
        if kind.is_fill() {
            let fill = Update {
                kind,
                ts_ns: u.get_item(U_TS)?.extract()?,
                qty: u.get_item(U_QTY)?.extract()?,
                price: u.get_item(U_PRICE)?.extract()?,
                fee: u.get_item(U_FEE)?.extract()?,
            };
            let symbol = u.get_item(U_SYMBOL)?.cast_into::<PyString>()?;
            self.book_fill(py, &order, &symbol, &u.get_item(U_SIDE)?, &fill)?;
        }
        self.settle(py, &order, change)?;
        Ok(order)
    }

    /// The fill simulator `sim` brought to `now_ns` (`catch_up(now_ns, feed)`, then `advance`), and
    /// `apply` of each event it reported since its last drain, in time order, taken from its core as they
    /// are (no `OrderUpdate` made): (events, events that ended an order).
    fn poll_simulator(
        &mut self,
        sim: &Bound<'_, PyFillSimulator>,
        now_ns: i64,
        feed: bool,
    ) -> PyResult<(usize, usize)> {
        let py = sim.py();
        {
            let mut s = sim.borrow_mut();
            s.catch_up(now_ns, feed)?;
            s.inner.advance(now_ns);
        }
        let events = sim.borrow_mut().drain_by_time();
        let sim = sim.borrow();
        let sim_orders = sim.inner.orders();
        let mut ended = 0;
        for e in &events {
            let o = &sim_orders[e.order as usize];
            let order = self.order_of(PyString::new(py, &o.id).as_any(), &e.kind.name())?;
            let fill = Update {
                kind: e.kind,
                ts_ns: e.ts,
                qty: e.qty,
                price: e.price,
                fee: e.fee,
            };
            let change = order.borrow_mut().step(py, &fill, &e.reason)?;
            if matches!(e.kind, UpdateKind::Accepted | UpdateKind::PartialFill) {
                if e.kind == UpdateKind::Accepted {
                    continue;
                }
            } else {
                ended += 1;
            }
            if e.kind.is_fill() {
                let symbol = order.borrow().symbol.bind(py).clone();
                self.book_fill(py, &order, &symbol, side_name(py, o.side).as_any(), &fill)?;
            }
            self.settle(py, &order, change)?;
        }
        Ok((events.len(), ended))
    }

    /// The orders sent and not yet taken, in the order sent, with their ranks (int64).
    fn ranked<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        let sent = self.sent.bind(py);
        let ranks = sent
            .values()
            .iter()
            .map(|r| r.extract::<i64>())
            .collect::<PyResult<Vec<_>>>()?;
        let orders = self.orders.bind(py);
        let orders = sent
            .keys()
            .iter()
            .map(|cid| orders.as_any().get_item(cid))
            .collect::<PyResult<Vec<_>>>()?;
        (PyList::new(py, orders)?, PyArray1::from_vec(py, ranks)).into_pyobject(py)
    }

    /// `ranked()` of the orders that are final (closed, and decided before `now_ns`: a later decision
    /// has a later time, hence another id, so the duplicate check needs only the rest), which are
    /// forgotten.
    fn take_final<'py>(&mut self, py: Python<'py>, now_ns: i64) -> PyResult<Bound<'py, PyTuple>> {
        let (sent, orders) = (self.sent.bind(py), self.orders.bind(py));
        let (mut taken, mut ranks, mut cids) = (Vec::new(), Vec::new(), Vec::new());
        for (cid, rank) in sent.iter() {
            let order = orders.as_any().get_item(&cid)?.cast_into::<PyOrder>()?;
            let o = order.borrow();
            if !o.is_open() && o.decision_ns < now_ns {
                ranks.push(rank.extract::<i64>()?);
                drop(o);
                taken.push(order);
                cids.push(cid);
            }
        }
        for cid in &cids {
            orders.del_item(cid)?;
            sent.del_item(cid)?;
        }
        (PyList::new(py, taken)?, PyArray1::from_vec(py, ranks)).into_pyobject(py)
    }

    /// Fills booked so far.
    #[getter]
    fn n_fills(&self) -> usize {
        self.fills.ts.len()
    }

    /// The fills from the `start`-th on as columns: ts (int64), (client_order_id, strategy, book,
    /// symbol, side) lists, (qty, price, fee, realized_pnl, decision_price, forecast_bps) float64
    /// arrays, and the orders' signs (+1 buy, -1 sell; int64).
    #[pyo3(signature = (start=0))]
    fn fill_columns<'py>(&self, py: Python<'py>, start: usize) -> PyResult<Bound<'py, PyTuple>> {
        self.columns(py, start)
    }

    /// `fill_columns()`, and the fills forgotten (booked results move on; `n_fills` starts again at 0).
    fn take_fills<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        let columns = self.columns(py, 0)?;
        self.fills = FillColumns::default();
        Ok(columns)
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        // `price` is a method of the engine that holds this flow: the one reference back to it
        if let Some(price) = &self.price {
            visit.call(price)?;
        }
        Ok(())
    }

    fn __clear__(&mut self) {
        self.price = None;
    }
}
