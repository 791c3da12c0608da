//! PyO3 layer of the order state machine (`crate::orders`): `hybridtrader.engine.orders.Order`.
use crate::orders::{OrderState, Status, TransitionError, Update, UpdateKind};
use numpy::PyArray1;
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyFloat, PyList, PyString, PyTuple};
use pyo3::{intern, IntoPyObjectExt};

pyo3::import_exception!(hybridtrader.errors, StateError);
pyo3::import_exception!(hybridtrader.errors, ConfigError);

// positions of the fields of `engine.events.OrderUpdate` (a named tuple) read here and by the order flow
pub(crate) const U_TS: usize = 0;
pub(crate) const U_CID: usize = 1;
pub(crate) const U_SYMBOL: usize = 2;
pub(crate) const U_SIDE: usize = 3;
pub(crate) const U_KIND: usize = 4;
pub(crate) const U_QTY: usize = 5;
pub(crate) const U_PRICE: usize = 6;
pub(crate) const U_FEE: usize = 7;
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

/// The columns of `orders` that the engine's orders frame takes from them, in one pass: (client_order_id,
/// strategy, book, leg, status, reason, symbol, side, type, time_in_force, limit_price, stop_price) as
/// a tuple of lists, (qty, decision_price, forecast_bps, filled_qty, notional, fees) as float64 arrays,
/// (decision_ns, updated_ns) as int64 arrays, and the signs (+1 buy, -1 sell) as an int64 array.
#[pyfunction]
pub fn order_columns<'py>(
    py: Python<'py>,
    orders: Vec<PyRef<'py, PyOrder>>,
) -> PyResult<Bound<'py, PyTuple>> {
    let n = orders.len();
    let mut text: Vec<Vec<Bound<'py, PyAny>>> = (0..12).map(|_| Vec::with_capacity(n)).collect();
    let mut floats: Vec<Vec<f64>> = (0..6).map(|_| Vec::with_capacity(n)).collect();
    let mut times: Vec<Vec<i64>> = (0..2).map(|_| Vec::with_capacity(n)).collect();
    let mut signs = Vec::with_capacity(n);
    for o in &orders {
        let request = o.request.bind(py);
        let own = [&o.client_order_id, &o.strategy, &o.book, &o.leg];
        for (column, value) in text.iter_mut().zip(own) {
            column.push(value.bind(py).clone().into_any());
        }
        text[4].push(name_str(py, o.state.status.name()).into_any());
        text[5].push(o.reason.bind(py).clone().into_any());
        text[6].push(o.symbol.bind(py).clone().into_any());
        for (k, attr) in [
            intern!(py, "side"),
            intern!(py, "type"),
            intern!(py, "time_in_force"),
            intern!(py, "limit_price"),
            intern!(py, "stop_price"),
        ]
        .into_iter()
        .enumerate()
        {
            text[7 + k].push(request.getattr(attr)?);
        }
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
    let text = text
        .into_iter()
        .map(|column| PyList::new(py, column))
        .collect::<PyResult<Vec<_>>>()?;
    let floats = floats.into_iter().map(|c| PyArray1::from_vec(py, c));
    let times = times.into_iter().map(|c| PyArray1::from_vec(py, c));
    (
        PyTuple::new(py, text)?,
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

/// The order types and times in force a request may name, in the order its errors list them.
const ORDER_TYPES: [&str; 4] = ["market", "limit", "stop", "stop_limit"];
const TIME_IN_FORCE: [&str; 6] = ["day", "gtc", "ioc", "fok", "opg", "cls"];

/// A default field value of `OrderRequest` (the market order's, good for the day).
fn default_str(value: &'static str) -> Py<PyAny> {
    Python::attach(|py| PyString::intern(py, value).into_any().unbind())
}

fn default_none() -> Py<PyAny> {
    Python::attach(|py| py.None())
}

/// Whether `x` is a str equal to one of `names`.
fn one_of(x: &Bound<'_, PyAny>, names: &[&str]) -> PyResult<bool> {
    Ok(match x.cast::<PyString>() {
        Ok(s) => names.contains(&s.to_str()?),
        Err(_) => false,
    })
}

/// What a strategy asks for (`hybridtrader.engine.orders.OrderRequest`): immutable, its fields as given,
/// validated on construction (ConfigError naming the field).
#[pyclass(name = "OrderRequest", module = "hybridtrader._core", frozen)]
pub struct PyOrderRequest {
    #[pyo3(get)]
    symbol: Py<PyAny>,
    #[pyo3(get)]
    side: Py<PyAny>,
    #[pyo3(get)]
    qty: Py<PyAny>,
    #[pyo3(get, name = "type")]
    order_type: Py<PyAny>,
    #[pyo3(get)]
    time_in_force: Py<PyAny>,
    #[pyo3(get)]
    limit_price: Py<PyAny>,
    #[pyo3(get)]
    stop_price: Py<PyAny>,
}

impl PyOrderRequest {
    fn fields<'py>(&self, py: Python<'py>) -> [&Bound<'py, PyAny>; 7] {
        [
            self.symbol.bind(py),
            self.side.bind(py),
            self.qty.bind(py),
            self.order_type.bind(py),
            self.time_in_force.bind(py),
            self.limit_price.bind(py),
            self.stop_price.bind(py),
        ]
    }

    /// The first rule the request breaks, as its error message.
    fn invalid(&self, py: Python<'_>) -> PyResult<Option<String>> {
        let [_, side, qty, order_type, tif, limit, stop] = self.fields(py);
        if !one_of(side, &["buy", "sell"])? {
            return Ok(Some(format!(
                "order side must be 'buy' or 'sell', got {}",
                side.repr()?
            )));
        }
        if !qty.gt(0)? {
            return Ok(Some(format!("order qty must be > 0, got {}", qty.repr()?)));
        }
        if !one_of(order_type, &ORDER_TYPES)? {
            return Ok(Some(format!(
                "order type must be one of {}, got {}",
                ORDER_TYPES.join(", "),
                order_type.repr()?
            )));
        }
        if !one_of(tif, &TIME_IN_FORCE)? {
            return Ok(Some(format!(
                "time_in_force must be one of {}, got {}",
                TIME_IN_FORCE.join(", "),
                tif.repr()?
            )));
        }
        let name = order_type.cast::<PyString>()?.to_str()?;
        let needs = |kinds: &[&str]| kinds.contains(&name);
        for (price, what, needed) in [
            (limit, "limit_price", needs(&["limit", "stop_limit"])),
            (stop, "stop_price", needs(&["stop", "stop_limit"])),
        ] {
            if needed == price.is_none() {
                let why = if needed { "required" } else { "not allowed" };
                return Ok(Some(format!("{name} order: {what} {why}")));
            }
        }
        Ok(None)
    }
}

#[pymethods]
impl PyOrderRequest {
    #[new]
    #[pyo3(signature = (
        symbol, side, qty, r#type=default_str("market"), time_in_force=default_str("day"),
        limit_price=default_none(), stop_price=default_none()
    ))]
    #[pyo3(
        text_signature = "(symbol, side, qty, type='market', time_in_force='day', limit_price=None, stop_price=None)"
    )]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        symbol: Py<PyAny>,
        side: Py<PyAny>,
        qty: Py<PyAny>,
        r#type: Py<PyAny>,
        time_in_force: Py<PyAny>,
        limit_price: Py<PyAny>,
        stop_price: Py<PyAny>,
    ) -> PyResult<Self> {
        let request = PyOrderRequest {
            symbol,
            side,
            qty,
            order_type: r#type,
            time_in_force,
            limit_price,
            stop_price,
        };
        match request.invalid(py)? {
            Some(why) => Err(ConfigError::new_err(why)),
            None => Ok(request),
        }
    }

    /// The order types a request may name.
    #[classattr]
    #[pyo3(name = "ORDER_TYPES")]
    fn order_types() -> [&'static str; 4] {
        ORDER_TYPES
    }

    /// The times in force a request may name.
    #[classattr]
    #[pyo3(name = "TIME_IN_FORCE")]
    fn time_in_force_names() -> [&'static str; 6] {
        TIME_IN_FORCE
    }

    /// +1 buy, -1 sell (the side was validated on construction).
    #[getter]
    fn sign(&self, py: Python<'_>) -> PyResult<i64> {
        Ok(if self.side.bind(py).eq(intern!(py, "buy"))? {
            1
        } else {
            -1
        })
    }

    fn __eq__(&self, py: Python<'_>, other: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        let Ok(other) = other.cast::<Self>() else {
            return Ok(py.NotImplemented());
        };
        let other = other.get();
        for (a, b) in self.fields(py).into_iter().zip(other.fields(py)) {
            if !(a.is(b) || a.eq(b)?) {
                return false.into_py_any(py);
            }
        }
        true.into_py_any(py)
    }

    fn __hash__(&self, py: Python<'_>) -> PyResult<isize> {
        PyTuple::new(py, self.fields(py))?.hash()
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let [symbol, side, qty, order_type, tif, limit, stop] = self.fields(py);
        Ok(format!(
            "OrderRequest(symbol={}, side={}, qty={}, type={}, time_in_force={}, limit_price={}, \
             stop_price={})",
            symbol.repr()?,
            side.repr()?,
            qty.repr()?,
            order_type.repr()?,
            tif.repr()?,
            limit.repr()?,
            stop.repr()?,
        ))
    }

    fn __reduce__<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyTuple>> {
        let py = slf.py();
        let args = PyTuple::new(py, slf.get().fields(py))?;
        PyTuple::new(py, [slf.get_type().into_any(), args.into_any()])
    }
}
