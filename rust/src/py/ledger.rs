//! PyO3 layer of the ledger (`crate::ledger`): `hybridtrader.portfolio.ledger.Ledger` subclasses
//! `LedgerCore`, which books fills into Python dicts its readers use as they are (`book`, `net`, `marks`).
use crate::ledger::{marked_row, net_after, Position};
use numpy::{PyArray1, PyReadonlyArray1, PyReadonlyArray2};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyFloat, PyString, PyTuple};

pyo3::import_exception!(hybridtrader.errors, DataError);

/// One strategy's position in one symbol (read-only: fills change it through the ledger).
#[pyclass(name = "Position", module = "hybridtrader._core")]
pub struct PyPosition {
    inner: Position,
}

impl PyPosition {
    fn get(&self) -> Position {
        self.inner
    }
}

#[pymethods]
impl PyPosition {
    #[getter]
    fn qty(&self) -> f64 {
        self.get().qty
    }
    #[getter]
    fn avg_price(&self) -> f64 {
        self.get().avg_price
    }
    #[getter]
    fn realized(&self) -> f64 {
        self.get().realized
    }
    #[getter]
    fn fees(&self) -> f64 {
        self.get().fees
    }
    /// Notional bought, for turnover.
    #[getter]
    fn bought(&self) -> f64 {
        self.get().bought
    }
    #[getter]
    fn sold(&self) -> f64 {
        self.get().sold
    }
    fn __repr__(&self) -> String {
        let p = self.get();
        format!(
            "Position(qty={:?}, avg_price={:?}, realized={:?}, fees={:?}, bought={:?}, sold={:?})",
            p.qty, p.avg_price, p.realized, p.fees, p.bought, p.sold
        )
    }
}

/// Cash and positions from fills: `book` (strategy, symbol) -> Position, `net` symbol -> the account's
/// shares (nonzero only), `marks` symbol -> last price; `held_changes` counts the times a symbol entered
/// or left `net`.
#[pyclass(name = "LedgerCore", module = "hybridtrader._core", subclass)]
pub struct PyLedger {
    #[pyo3(get)]
    start_cash: f64,
    #[pyo3(get)]
    cash: f64,
    #[pyo3(get)]
    book: Py<PyDict>,
    #[pyo3(get)]
    net: Py<PyDict>,
    #[pyo3(get)]
    pub(crate) marks: Py<PyDict>,
    #[pyo3(get)]
    held_changes: u64,
}

#[pymethods]
impl PyLedger {
    #[new]
    fn new(py: Python<'_>, cash: &Bound<'_, PyAny>) -> PyResult<Self> {
        let value = cash
            .extract::<f64>()
            .ok()
            .filter(|c| c.is_finite() && *c > 0.0);
        let Some(cash_value) = value else {
            return Err(DataError::new_err(format!(
                "ledger: starting cash must be a positive number, got {}",
                cash.repr()?
            )));
        };
        Ok(PyLedger {
            start_cash: cash_value,
            cash: cash_value,
            book: PyDict::new(py).unbind(),
            net: PyDict::new(py).unbind(),
            marks: PyDict::new(py).unbind(),
            held_changes: 0,
        })
    }

    /// Book one fill; returns the P&L it realised (before fees). DataError for a side other than "buy" or
    /// "sell", qty <= 0, a price not positive and finite, or fee < 0.
    fn apply_fill(
        &mut self,
        strategy: &Bound<'_, PyString>,
        symbol: &Bound<'_, PyString>,
        side: &Bound<'_, PyAny>,
        qty: f64,
        price: f64,
        fee: f64,
    ) -> PyResult<f64> {
        self.book_fill(strategy, symbol, side, qty, price, fee)
    }
}

impl PyLedger {
    /// `apply_fill`, for the engine's order flow (`crate::py::flow`).
    pub(crate) fn book_fill(
        &mut self,
        strategy: &Bound<'_, PyString>,
        symbol: &Bound<'_, PyString>,
        side: &Bound<'_, PyAny>,
        q: f64,
        px: f64,
        f: f64,
    ) -> PyResult<f64> {
        let py = symbol.py();
        let buy = if side.eq(intern!(py, "buy"))? {
            true
        } else if side.eq(intern!(py, "sell"))? {
            false
        } else {
            return Err(DataError::new_err(format!(
                "ledger: fill side must be 'buy' or 'sell', got {}",
                side.repr()?
            )));
        };
        if !(q > 0.0 && px > 0.0 && px.is_finite() && f >= 0.0) {
            let float = |x: f64| PyFloat::new(py, x).str();
            return Err(DataError::new_err(format!(
                "ledger: bad fill {symbol} {side} {} @ {} fee {}",
                float(q)?,
                float(px)?,
                float(f)?
            )));
        }
        let key = PyTuple::new(py, [strategy, symbol])?;
        let book = self.book.bind(py);
        let position = match book.get_item(&key)? {
            Some(p) => p.cast_into::<PyPosition>()?,
            None => {
                let p = Bound::new(
                    py,
                    PyPosition {
                        inner: Position::default(),
                    },
                )?;
                book.set_item(&key, &p)?;
                p
            }
        };
        let realized = position.borrow_mut().inner.apply_fill(buy, q, px, f);
        let signed = if buy { q } else { -q };
        self.cash -= signed * px + f;
        let net = self.net.bind(py);
        let held = net.get_item(symbol)?;
        let was_held = held.is_some();
        match net_after(held.map(|h| h.extract::<f64>()).transpose()?, signed) {
            None if was_held => {
                net.del_item(symbol)?;
                self.held_changes += 1;
            }
            None => {}
            Some(shares) => {
                if !was_held {
                    self.held_changes += 1;
                }
                net.set_item(symbol, PyFloat::new(py, shares))?;
            }
        }
        let marks = self.marks.bind(py);
        if !marks.contains(symbol)? {
            marks.set_item(symbol, PyFloat::new(py, px))?;
        }
        Ok(realized)
    }
}

type Column<'py> = Bound<'py, PyArray1<f64>>;

/// Net and gross value of the account's `shares` (one per symbol) at each row of `prices` (bar time x
/// symbol), each row summed as numpy sums it (`np.add.reduce`, bit for bit).
#[pyfunction]
pub fn marked_values<'py>(
    py: Python<'py>,
    shares: PyReadonlyArray1<'py, f64>,
    prices: PyReadonlyArray2<'py, f64>,
) -> PyResult<(Column<'py>, Column<'py>)> {
    let shares = shares.as_array();
    let prices = prices.as_array();
    if prices.ncols() != shares.len() {
        return Err(DataError::new_err(format!(
            "marked_values: {} prices per row for {} symbols",
            prices.ncols(),
            shares.len()
        )));
    }
    let shares = shares.to_vec();
    let (mut row, mut values) = (Vec::new(), Vec::new()); // buffers, reused row after row
    let (nets, grosses): (Vec<f64>, Vec<f64>) = prices
        .rows()
        .into_iter()
        .map(|prices| {
            row.clear();
            row.extend(prices.iter());
            marked_row(&shares, &row, &mut values)
        })
        .unzip();
    Ok((
        PyArray1::from_vec(py, nets),
        PyArray1::from_vec(py, grosses),
    ))
}
