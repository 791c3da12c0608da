//! PyO3 layer of the order state machine (`crate::orders`): `hybridtrader.engine.orders.Order`.
use crate::orders::{OrderState, Status, TransitionError, Update, UpdateKind};
use numpy::PyArray1;
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyFloat, PyList, PyString, PyTuple};
use pyo3::{intern, IntoPyObjectExt};
use std::collections::HashMap;

pyo3::import_exception!(hybridtrader.errors, StateError);

// positions of the fields of `engine.events.OrderUpdate` (a named tuple) that the state machine reads
const U_TS: usize = 0;
const U_CID: usize = 1;
const U_KIND: usize = 4;
const U_QTY: usize = 5;
const U_PRICE: usize = 6;
const U_FEE: usize = 7;
const U_REASON: usize = 10;

/// A status or update kind as an interned Python string (no new string per read).
fn name_str<'py>(py: Python<'py>, name: &'static str) -> Bound<'py, PyString> {
    match name {
        "new" => intern!(py, "new").clone(),
        "accepted" => intern!(py, "accepted").clone(),
        "partially_filled" => intern!(py, "partially_filled").clone(),
        "filled" => intern!(py, "filled").clone(),
        "canceled" => intern!(py, "canceled").clone(),
        "expired" => intern!(py, "expired").clone(),
        "rejected" => intern!(py, "rejected").clone(),
        "replaced" => intern!(py, "replaced").clone(),
        "partial_fill" => intern!(py, "partial_fill").clone(),
        "fill" => intern!(py, "fill").clone(),
        other => PyString::intern(py, other),
    }
}

/// One order the engine sent, and what the broker has said about it since.
#[pyclass(name = "Order", module = "hybridtrader._core")]
pub struct PyOrder {
    #[pyo3(get)]
    pub(crate) client_order_id: Py<PyString>,
    #[pyo3(get)]
    pub(crate) strategy: Py<PyString>,
    #[pyo3(get)]
    pub(crate) book: Py<PyString>,
    #[pyo3(get)]
    pub(crate) leg: Py<PyString>,
    #[pyo3(get)]
    pub(crate) request: Py<PyAny>,
    /// The request's symbol and sign (+1 buy, -1 sell), read once: the engine reads them per update.
    #[pyo3(get)]
    pub(crate) symbol: Py<PyString>,
    #[pyo3(get)]
    pub(crate) sign: i64,
    #[pyo3(get)]
    pub(crate) decision_ns: i64,
    #[pyo3(get)]
    pub(crate) decision_price: f64,
    #[pyo3(get)]
    pub(crate) forecast_bps: f64,
    #[pyo3(get)]
    pub(crate) reason: Py<PyString>,
    pub(crate) state: OrderState,
}

impl PyOrder {
    /// The StateError for a refused update of kind `kind` and fill quantity `fill` (as the update gave
    /// them), worded as the engine has always worded it.
    fn refusal(
        &self,
        kind: &Bound<'_, PyAny>,
        fill: &Bound<'_, PyAny>,
        e: TransitionError,
    ) -> PyResult<PyErr> {
        let py = kind.py();
        let cid = self.client_order_id.bind(py);
        let float = |x: f64| PyFloat::new(py, x).str();
        let msg = match e {
            TransitionError::Illegal { from, .. } => {
                format!("order {cid}: illegal transition {} -> {kind}", from.name())
            }
            TransitionError::Overfill { filled, .. } => {
                let qty = self.request.bind(py).getattr("qty")?;
                format!("order {cid}: fill {fill} makes {} of {qty}", float(filled)?)
            }
            TransitionError::Leaves { kind, open } => {
                format!("order {cid}: {} leaves {} open", kind.name(), float(open)?)
            }
        };
        Ok(StateError::new_err(msg))
    }

    /// `apply` of an update already taken apart (the order flow's, from the fill simulator): its
    /// `reason` ("" for none) becomes the order's.
    pub(crate) fn step(&mut self, py: Python<'_>, update: &Update, reason: &str) -> PyResult<f64> {
        match self.state.apply(update) {
            Ok(change) => {
                if !reason.is_empty() {
                    self.reason = PyString::new(py, reason).unbind();
                }
                Ok(change)
            }
            Err(e) => {
                let kind = name_str(py, update.kind.name()).into_any();
                Err(self.refusal(&kind, &PyFloat::new(py, update.qty).into_any(), e)?)
            }
        }
    }

    /// The kind of the last update applied.
    pub(crate) fn last_kind(&self) -> Option<UpdateKind> {
        self.state.history.last().copied()
    }
}

#[pymethods]
impl PyOrder {
    #[new]
    #[pyo3(signature = (
        client_order_id, strategy, book, leg, request, decision_ns, decision_price, forecast_bps,
        status = "new", filled_qty = 0.0, notional = 0.0, fees = 0.0, updated_ns = 0,
        reason = None, history = None
    ))]
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        py: Python<'_>,
        client_order_id: Py<PyString>,
        strategy: Py<PyString>,
        book: Py<PyString>,
        leg: Py<PyString>,
        request: Bound<'_, PyAny>,
        decision_ns: i64,
        decision_price: f64,
        forecast_bps: f64,
        status: &str,
        filled_qty: f64,
        notional: f64,
        fees: f64,
        updated_ns: i64,
        reason: Option<Py<PyString>>,
        history: Option<Vec<String>>,
    ) -> PyResult<Self> {
        let qty: f64 = request.getattr(intern!(py, "qty"))?.extract()?;
        let symbol = request.getattr(intern!(py, "symbol"))?.extract()?;
        // `request.sign` (the side was validated on construction), without calling its property
        let side = request.getattr(intern!(py, "side"))?;
        let sign = if side.eq(intern!(py, "buy"))? { 1 } else { -1 };
        let status = Status::parse(status)
            .ok_or_else(|| PyValueError::new_err(format!("order status: unknown {status:?}")))?;
        let history = history
            .unwrap_or_default()
            .iter()
            .map(|k| {
                UpdateKind::parse(k).ok_or_else(|| {
                    PyValueError::new_err(format!("order history: unknown update kind {k:?}"))
                })
            })
            .collect::<PyResult<Vec<_>>>()?;
        Ok(PyOrder {
            client_order_id,
            strategy,
            book,
            leg,
            request: request.unbind(),
            symbol,
            sign,
            decision_ns,
            decision_price,
            forecast_bps,
            reason: reason.unwrap_or_else(|| intern!(py, "").clone().unbind()),
            state: OrderState {
                qty,
                status,
                filled_qty,
                notional,
                fees,
                updated_ns,
                history,
            },
        })
    }

    #[getter]
    fn status<'py>(&self, py: Python<'py>) -> Bound<'py, PyString> {
        name_str(py, self.state.status.name())
    }

    #[getter]
    fn filled_qty(&self) -> f64 {
        self.state.filled_qty
    }

    /// Sum of fill qty x price.
    #[getter]
    fn notional(&self) -> f64 {
        self.state.notional
    }

    #[getter]
    fn fees(&self) -> f64 {
        self.state.fees
    }

    #[getter]
    fn updated_ns(&self) -> i64 {
        self.state.updated_ns
    }

    /// The kinds of the updates applied, in order (a new list).
    #[getter]
    fn history<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        PyList::new(
            py,
            self.state.history.iter().map(|k| name_str(py, k.name())),
        )
    }

    #[getter]
    pub(crate) fn is_open(&self) -> bool {
        self.state.status.is_open()
    }

    #[getter]
    fn leaves_qty(&self) -> f64 {
        self.state.leaves_qty()
    }

    #[getter]
    fn avg_price(&self) -> f64 {
        self.state.avg_price()
    }

    /// Move to the state `update` (an `OrderUpdate`) reports; StateError when the transition or the
    /// quantities are illegal (the order is left unchanged). Returns the change of `leaves_qty`.
    pub(crate) fn apply(&mut self, update: &Bound<'_, PyAny>) -> PyResult<f64> {
        let py = update.py();
        let update = update.cast::<PyTuple>().map_err(|_| {
            PyTypeError::new_err(format!("order update must be an OrderUpdate, got {update}"))
        })?;
        let cid = update.get_item(U_CID)?;
        let own = self.client_order_id.bind(py);
        if !cid.is(own) && !cid.eq(own)? {
            return Err(StateError::new_err(format!(
                "order {own}: update for {cid}"
            )));
        }
        let raw = update.get_item(U_KIND)?;
        let Some(kind) = raw
            .cast::<PyString>()
            .ok()
            .and_then(|k| UpdateKind::parse(k.to_str().ok()?))
        else {
            let from = self.state.status.name();
            return Err(StateError::new_err(format!(
                "order {own}: illegal transition {from} -> {raw}"
            )));
        };
        let (qty, price, fee) = if kind.is_fill() {
            (
                update.get_item(U_QTY)?.extract()?,
                update.get_item(U_PRICE)?.extract()?,
                update.get_item(U_FEE)?.extract()?,
            )
        } else {
            (0.0, 0.0, 0.0)
        };
        let ts_ns: i64 = update.get_item(U_TS)?.extract()?;
        let fields = Update {
            kind,
            ts_ns,
            qty,
            price,
            fee,
        };
        let change = match self.state.apply(&fields) {
            Ok(change) => change,
            Err(e) => {
                let (kind, fill) = (update.get_item(U_KIND)?, update.get_item(U_QTY)?);
                return Err(self.refusal(&kind, &fill, e)?);
            }
        };
        let reason = update.get_item(U_REASON)?;
        if reason.is_truthy()? {
            self.reason = reason.cast_into::<PyString>()?.unbind();
        }
        Ok(change)
    }

    fn __eq__(&self, py: Python<'_>, other: PyRef<'_, Self>) -> PyResult<bool> {
        let same = |a: &Py<PyString>, b: &Py<PyString>| a.bind(py).as_any().eq(b.bind(py));
        Ok(same(&self.client_order_id, &other.client_order_id)?
            && same(&self.strategy, &other.strategy)?
            && same(&self.book, &other.book)?
            && same(&self.leg, &other.leg)?
            && self.request.bind(py).eq(other.request.bind(py))?
            && self.decision_ns == other.decision_ns
            && self.decision_price == other.decision_price
            && self.forecast_bps == other.forecast_bps
            && same(&self.reason, &other.reason)?
            && self.state == other.state)
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let r = |x: Bound<'_, PyAny>| -> PyResult<String> { Ok(x.repr()?.to_string()) };
        let s = &self.state;
        Ok(format!(
            "Order(client_order_id={}, strategy={}, book={}, leg={}, request={}, decision_ns={}, \
             decision_price={}, forecast_bps={}, status='{}', filled_qty={}, notional={}, fees={}, \
             updated_ns={}, reason={}, history={})",
            r(self.client_order_id.bind(py).clone().into_any())?,
            r(self.strategy.bind(py).clone().into_any())?,
            r(self.book.bind(py).clone().into_any())?,
            r(self.leg.bind(py).clone().into_any())?,
            r(self.request.bind(py).clone())?,
            self.decision_ns,
            r(self.decision_price.into_bound_py_any(py)?)?,
            r(self.forecast_bps.into_bound_py_any(py)?)?,
            s.status.name(),
            r(s.filled_qty.into_bound_py_any(py)?)?,
            r(s.notional.into_bound_py_any(py)?)?,
            r(s.fees.into_bound_py_any(py)?)?,
            s.updated_ns,
            r(self.reason.bind(py).clone().into_any())?,
            r(self.history(py)?.into_any())?,
        ))
    }
}

/// A text column as its distinct values and each row's code into them: the orders' text repeats a few
/// values (strategies, books, legs, statuses, symbols...), so the frame gathers them instead of converting
/// a Python string per row.
struct Coded<'py> {
    names: Vec<Bound<'py, PyAny>>,
    codes: Vec<u32>,
    by_object: HashMap<usize, u32>, // a value's object (kept alive by `rows`) -> its code
    rows: Vec<Bound<'py, PyAny>>,
}

impl<'py> Coded<'py> {
    fn new(n: usize) -> Self {
        Coded {
            names: Vec::new(),
            codes: Vec::with_capacity(n),
            by_object: HashMap::new(),
            rows: Vec::with_capacity(n),
        }
    }

    fn push(&mut self, value: Bound<'py, PyAny>) {
        // equal strings that are distinct objects get distinct codes of equal names: the gather is alike
        let next = self.names.len() as u32;
        let code = *self
            .by_object
            .entry(value.as_ptr() as usize)
            .or_insert(next);
        if code == next {
            self.names.push(value.clone());
        }
        self.codes.push(code);
        self.rows.push(value);
    }

    fn into_columns(self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        (
            PyList::new(py, self.names)?,
            PyArray1::from_vec(py, self.codes),
        )
            .into_pyobject(py)
    }
}

/// An optional price column: values (0.0 where absent) and whether each is present.
#[derive(Default)]
struct Prices {
    values: Vec<f64>,
    present: Vec<bool>,
}

impl Prices {
    fn push(&mut self, price: Option<f64>) {
        self.values.push(price.unwrap_or(0.0));
        self.present.push(price.is_some());
    }
}

/// The columns of `orders` that the engine's orders frame takes from them, in one pass: the
/// client_order_ids (a list); (strategy, book, leg, status, reason, symbol, side, type, time_in_force)
/// each as (distinct values, uint32 code of each row); (limit_price, has one, stop_price, has one) as
/// float64 and bool arrays; (qty, decision_price, forecast_bps, filled_qty, notional, fees) as float64
/// arrays; (decision_ns, updated_ns) as int64 arrays; and the signs (+1 buy, -1 sell) as an int64 array.
#[pyfunction]
pub fn order_columns<'py>(
    py: Python<'py>,
    orders: Vec<PyRef<'py, PyOrder>>,
) -> PyResult<Bound<'py, PyTuple>> {
    let n = orders.len();
    let mut ids = Vec::with_capacity(n);
    let mut coded: Vec<Coded<'py>> = (0..9).map(|_| Coded::new(n)).collect();
    let (mut limit, mut stop) = (Prices::default(), Prices::default());
    let mut floats: Vec<Vec<f64>> = (0..6).map(|_| Vec::with_capacity(n)).collect();
    let mut times: Vec<Vec<i64>> = (0..2).map(|_| Vec::with_capacity(n)).collect();
    let mut signs = Vec::with_capacity(n);
    for o in &orders {
        let request = o.request.bind(py);
        ids.push(o.client_order_id.bind(py).clone());
        let own = [&o.strategy, &o.book, &o.leg];
        for (column, value) in coded.iter_mut().zip(own) {
            column.push(value.bind(py).clone().into_any());
        }
        coded[3].push(name_str(py, o.state.status.name()).into_any());
        coded[4].push(o.reason.bind(py).clone().into_any());
        coded[5].push(o.symbol.bind(py).clone().into_any());
        for (k, attr) in [
            intern!(py, "side"),
            intern!(py, "type"),
            intern!(py, "time_in_force"),
        ]
        .into_iter()
        .enumerate()
        {
            coded[6 + k].push(request.getattr(attr)?);
        }
        limit.push(request.getattr(intern!(py, "limit_price"))?.extract()?);
        stop.push(request.getattr(intern!(py, "stop_price"))?.extract()?);
        let s = &o.state;
        for (column, value) in floats.iter_mut().zip([
            s.qty,
            o.decision_price,
            o.forecast_bps,
            s.filled_qty,
            s.notional,
            s.fees,
        ]) {
            column.push(value);
        }
        times[0].push(o.decision_ns);
        times[1].push(s.updated_ns);
        signs.push(o.sign);
    }
    let coded = coded
        .into_iter()
        .map(|column| column.into_columns(py))
        .collect::<PyResult<Vec<_>>>()?;
    let prices = (
        PyArray1::from_vec(py, limit.values),
        PyArray1::from_vec(py, limit.present),
        PyArray1::from_vec(py, stop.values),
        PyArray1::from_vec(py, stop.present),
    );
    let floats = floats.into_iter().map(|c| PyArray1::from_vec(py, c));
    let times = times.into_iter().map(|c| PyArray1::from_vec(py, c));
    (
        PyList::new(py, ids)?,
        PyTuple::new(py, coded)?,
        prices,
        PyTuple::new(py, floats)?,
        PyTuple::new(py, times)?,
        PyArray1::from_vec(py, signs),
    )
        .into_pyobject(py)
}

/// "ht-" + blake2b-128 hex of (strategy, symbol, decision_ns, leg): `crate::orders::client_order_id`.
#[pyfunction]
pub fn client_order_id(strategy: &str, symbol: &str, decision_ns: i64, leg: &str) -> String {
    crate::orders::client_order_id(strategy, symbol, decision_ns, leg)
}
