//! PyO3 layer of the slippage model. `hybridtrader.SlippageModel` subclasses this class, so the per-call
//! methods below are what Python calls directly.
use crate::common::Side;
use crate::py::parse_side;
use crate::slippage::{SlippageError, SlippageModel, SlippageParams};
use numpy::{PyArray1, PyReadonlyArray1};
use pyo3::exceptions::{PyFileNotFoundError, PyOSError, PyPermissionError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyInt};
use std::path::PathBuf;

fn to_py(e: SlippageError) -> PyErr {
    let msg = e.to_string();
    match e {
        SlippageError::Io { source, .. } => match source.kind() {
            std::io::ErrorKind::NotFound => PyFileNotFoundError::new_err(msg),
            std::io::ErrorKind::PermissionDenied => PyPermissionError::new_err(msg),
            _ => PyOSError::new_err(msg),
        },
        _ => PyValueError::new_err(msg),
    }
}

fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

/// `ts`: None (now), int epoch ns (also numpy integers), or a timezone-aware datetime.
fn ts_ns(ts: Option<&Bound<'_, PyAny>>) -> PyResult<i64> {
    let Some(ts) = ts else { return Ok(now_ns()) };
    if ts.is_none() {
        return Ok(now_ns());
    }
    if ts.is_instance_of::<PyInt>() {
        return ts.extract::<i64>();
    }
    if ts.hasattr("tzinfo")? {
        if ts.getattr("tzinfo")?.is_none() {
            return Err(PyValueError::new_err(format!(
                "ts must be timezone-aware (UTC), got naive datetime {ts}"
            )));
        }
        let secs: f64 = ts.call_method0("timestamp")?.extract()?;
        return Ok((secs * 1e9).round() as i64);
    }
    ts.extract::<i64>().map_err(|_| {
        PyValueError::new_err(format!(
            "ts must be None, epoch nanoseconds (int) or an aware datetime, got {ts}"
        ))
    })
}

fn same_len(n: usize, others: &[usize]) -> PyResult<usize> {
    match others.iter().find(|&&m| m != n) {
        Some(m) => Err(PyValueError::new_err(format!(
            "column lengths differ: {m} rows against {n} symbol codes"
        ))),
        None => Ok(n),
    }
}

fn symbol_name(names: &[String], code: u32) -> Result<&str, String> {
    names.get(code as usize).map(String::as_str).ok_or_else(|| {
        format!(
            "symbol code {code} is out of range ({} symbols)",
            names.len()
        )
    })
}

#[pyclass(name = "SlippageModelCore", module = "hybridtrader._core", subclass)]
pub struct PySlippageModel {
    inner: SlippageModel,
}

impl PySlippageModel {
    /// The fill simulator's impact (bps) for `qty` shares of `symbol` sent at `ts_ns` (`fills::impact_bps`
    /// of this model's cost and spread forecasts).
    pub(crate) fn impact_bps(&self, symbol: &str, qty: f64, ts_ns: i64) -> PyResult<f64> {
        let cost = self.inner.forecast(symbol, qty, ts_ns).map_err(to_py)?;
        Ok(crate::fills::impact_bps(
            cost,
            self.inner.forecast_spread(symbol, ts_ns),
        ))
    }

    /// `forecast_slippage` at `ts_ns`, with its checks of the side and the price.
    pub(crate) fn forecast_at(
        &self,
        symbol: &str,
        side: &str,
        qty: f64,
        price: f64,
        ts_ns: i64,
    ) -> PyResult<f64> {
        parse_side(side)?;
        if !(price.is_finite() && price > 0.0) {
            return Err(PyValueError::new_err(format!(
                "price must be a finite number > 0, got {price}"
            )));
        }
        self.inner.forecast(symbol, qty, ts_ns).map_err(to_py)
    }

    /// `update_fill` at `ts_ns` with a parsed side.
    pub(crate) fn learn_fill(
        &mut self,
        symbol: &str,
        side: Side,
        qty: f64,
        arrival_price: f64,
        fill_price: f64,
        ts_ns: i64,
    ) -> PyResult<(f64, f64, f64)> {
        let o = self
            .inner
            .update_fill(symbol, side, qty, arrival_price, fill_price, ts_ns)
            .map_err(to_py)?;
        Ok((o.cost_bps, o.half_spread_bps, o.participation_term_bps))
    }
}

#[pymethods]
impl PySlippageModel {
    #[new]
    #[pyo3(signature = (
        *, max_slippage_bps=20.0, impact_exponent=0.6, prior_impact_coef=0.5, prior_spread_bps=5.0,
        prior_adv_shares=1_000_000.0, prior_daily_vol_bps=200.0, learning_rate=0.01,
        prior_strength_fills=5.0, spread_learning_rate=0.05, bucket_minutes=30
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        max_slippage_bps: f64,
        impact_exponent: f64,
        prior_impact_coef: f64,
        prior_spread_bps: f64,
        prior_adv_shares: f64,
        prior_daily_vol_bps: f64,
        learning_rate: f64,
        prior_strength_fills: f64,
        spread_learning_rate: f64,
        bucket_minutes: u32,
    ) -> PyResult<Self> {
        let params = SlippageParams {
            max_slippage_bps,
            impact_exponent,
            prior_impact_coef,
            prior_spread_bps,
            prior_adv_shares,
            prior_daily_vol_bps,
            learning_rate,
            prior_strength_fills,
            spread_learning_rate,
            bucket_minutes,
        };
        Ok(Self {
            inner: SlippageModel::new(params).map_err(to_py)?,
        })
    }

    /// Expected cost in bps of a marketable order (half spread + impact, capped at max_slippage_bps).
    #[pyo3(signature = (symbol, side, qty, price, ts=None))]
    fn forecast_slippage(
        &self,
        symbol: &str,
        side: &str,
        qty: f64,
        price: f64,
        ts: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<f64> {
        self.forecast_at(symbol, side, qty, price, ts_ns(ts)?)
    }

    /// Expected spread in bps at the time of day of `ts`.
    #[pyo3(signature = (symbol, ts=None))]
    fn forecast_spread(&self, symbol: &str, ts: Option<&Bound<'_, PyAny>>) -> PyResult<f64> {
        Ok(self.inner.forecast_spread(symbol, ts_ns(ts)?))
    }

    /// Batch forecast over symbol codes into `names`; the GIL is released for the loop.
    fn forecast_codes<'py>(
        &self,
        py: Python<'py>,
        names: Vec<String>,
        codes: PyReadonlyArray1<'py, u32>,
        qty: PyReadonlyArray1<'py, f64>,
        price: PyReadonlyArray1<'py, f64>,
        ts: PyReadonlyArray1<'py, i64>,
    ) -> PyResult<Bound<'py, PyArray1<f64>>> {
        let (codes, qty, price, ts) = (
            codes.as_slice()?,
            qty.as_slice()?,
            price.as_slice()?,
            ts.as_slice()?,
        );
        let inner = &self.inner;
        let out = py
            .detach(|| {
                let mut out = vec![0.0; codes.len()];
                inner
                    .forecast_batch(&names, codes, qty, price, ts, &mut out)
                    .map(|()| out)
            })
            .map_err(to_py)?;
        Ok(PyArray1::from_vec(py, out))
    }

    /// Learn from one fill; returns (cost_bps, half_spread_bps, participation_term_bps).
    #[pyo3(signature = (symbol, side, qty, arrival_price, fill_price, ts=None))]
    fn update_fill(
        &mut self,
        symbol: &str,
        side: &str,
        qty: f64,
        arrival_price: f64,
        fill_price: f64,
        ts: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<(f64, f64, f64)> {
        let side = parse_side(side)?;
        self.learn_fill(symbol, side, qty, arrival_price, fill_price, ts_ns(ts)?)
    }

    /// Learn a batch of fills in row order; `buy[i]` is true for buys. The GIL is released.
    #[allow(clippy::too_many_arguments)]
    fn update_fills(
        &mut self,
        py: Python<'_>,
        names: Vec<String>,
        codes: PyReadonlyArray1<'_, u32>,
        buy: PyReadonlyArray1<'_, bool>,
        qty: PyReadonlyArray1<'_, f64>,
        arrival_price: PyReadonlyArray1<'_, f64>,
        fill_price: PyReadonlyArray1<'_, f64>,
        ts: PyReadonlyArray1<'_, i64>,
    ) -> PyResult<usize> {
        let (codes, buy, qty, arrival, fill, ts) = (
            codes.as_slice()?,
            buy.as_slice()?,
            qty.as_slice()?,
            arrival_price.as_slice()?,
            fill_price.as_slice()?,
            ts.as_slice()?,
        );
        let n = same_len(
            codes.len(),
            &[buy.len(), qty.len(), arrival.len(), fill.len(), ts.len()],
        )?;
        let inner = &mut self.inner;
        py.detach(|| {
            for i in 0..n {
                let name = symbol_name(&names, codes[i])?;
                let side = if buy[i] { Side::Buy } else { Side::Sell };
                inner
                    .update_fill(name, side, qty[i], arrival[i], fill[i], ts[i])
                    .map_err(|e| format!("fill row {i}: {e}"))?;
            }
            Ok::<usize, String>(n)
        })
        .map_err(PyValueError::new_err)
    }

    /// Learn quote bars' mean spreads (bps) in row order. The GIL is released.
    fn update_spreads(
        &mut self,
        py: Python<'_>,
        names: Vec<String>,
        codes: PyReadonlyArray1<'_, u32>,
        ts: PyReadonlyArray1<'_, i64>,
        spread_bps: PyReadonlyArray1<'_, f64>,
    ) -> PyResult<usize> {
        let (codes, ts, spread) = (codes.as_slice()?, ts.as_slice()?, spread_bps.as_slice()?);
        let n = same_len(codes.len(), &[ts.len(), spread.len()])?;
        let inner = &mut self.inner;
        py.detach(|| {
            for i in 0..n {
                let name = symbol_name(&names, codes[i])?;
                inner
                    .update_spread(name, ts[i], spread[i])
                    .map_err(|e| format!("quote bar row {i}: {e}"))?;
            }
            Ok::<usize, String>(n)
        })
        .map_err(PyValueError::new_err)
    }

    /// Set ADV (shares) and/or daily volatility (bps) of a symbol.
    #[pyo3(signature = (symbol, adv_shares=None, daily_vol_bps=None))]
    fn set_daily_stats(
        &mut self,
        symbol: &str,
        adv_shares: Option<f64>,
        daily_vol_bps: Option<f64>,
    ) -> PyResult<()> {
        self.inner
            .set_daily_stats(symbol, adv_shares, daily_vol_bps)
            .map_err(to_py)
    }

    /// Time-of-day bucket of each timestamp (epoch ns), as used by the spread profile.
    fn time_buckets<'py>(
        &self,
        py: Python<'py>,
        ts: PyReadonlyArray1<'py, i64>,
    ) -> PyResult<Bound<'py, PyArray1<i64>>> {
        let out = ts
            .as_slice()?
            .iter()
            .map(|&t| self.inner.bucket(t) as i64)
            .collect();
        Ok(PyArray1::from_vec(py, out))
    }

    /// Resolved parameters of a symbol (pooled values where it has learned nothing).
    fn symbol_params<'py>(&self, py: Python<'py>, symbol: &str) -> PyResult<Bound<'py, PyDict>> {
        let r = self.inner.resolved(symbol);
        let s = self.inner.symbol_state(symbol);
        let d = PyDict::new(py);
        d.set_item("known", s.is_some())?;
        d.set_item("impact_coef", r.impact_coef)?;
        d.set_item("adv_shares", r.adv_shares)?;
        d.set_item("daily_vol_bps", r.daily_vol_bps)?;
        d.set_item("spread_bps", r.spread_bps)?;
        d.set_item(
            "n_fills",
            s.and_then(|s| s.impact.as_ref()).map_or(0, |e| e.n_fills),
        )?;
        Ok(d)
    }

    /// Symbols with learned state, in the order they were first seen.
    #[getter]
    fn symbols(&self) -> Vec<String> {
        self.inner.symbols().to_vec()
    }

    #[getter]
    fn n_buckets(&self) -> usize {
        self.inner.n_buckets()
    }

    #[getter]
    fn max_slippage_bps(&self) -> f64 {
        self.inner.params().max_slippage_bps
    }

    #[getter]
    fn impact_exponent(&self) -> f64 {
        self.inner.params().impact_exponent
    }

    /// Save the learned state as JSON, atomically (temp file + fsync + rename).
    fn save(&self, py: Python<'_>, path: PathBuf) -> PyResult<()> {
        let inner = &self.inner;
        py.detach(|| inner.save(&path)).map_err(to_py)
    }

    /// Replace the learned state by the one saved at `path`.
    fn load(&mut self, path: PathBuf) -> PyResult<()> {
        self.inner.load(&path).map_err(to_py)
    }

    /// The learned state as the JSON text `save` writes.
    fn to_json(&self) -> String {
        self.inner.to_json()
    }

    /// Replace the learned state by JSON text from `to_json`; `source` names it in error messages.
    #[pyo3(signature = (text, source="<json>"))]
    fn load_json(&mut self, text: &str, source: &str) -> PyResult<()> {
        self.inner
            .load_json(text, std::path::Path::new(source))
            .map_err(to_py)
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PySlippageModel>()
}
