//! Python binding of the features' seeded smoother (`hybridtrader.ml.features`): numpy columns in, the
//! smoothed values and their presence out, computed without the GIL.
use numpy::{PyArray1, PyArray2, PyArrayMethods, PyReadonlyArray1, PyReadonlyArray2};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use crate::smoothing;

type Columns<'py> = (Bound<'py, PyArray1<f64>>, Bound<'py, PyArray1<bool>>);

/// Seeded EWM over runs of rows (see `smoothing::seeded_ewm`); `bounds` as int64 run starts plus the
/// row count.
#[pyfunction]
#[allow(clippy::too_many_arguments)]
fn seeded_ewm<'py>(
    py: Python<'py>,
    value: PyReadonlyArray1<'py, f64>,
    present: PyReadonlyArray1<'py, bool>,
    bounds: PyReadonlyArray1<'py, i64>,
    seed: PyReadonlyArray1<'py, f64>,
    seed_present: PyReadonlyArray1<'py, bool>,
    seed_row: usize,
    alpha: f64,
) -> PyResult<Columns<'py>> {
    let (value, present, seed) = (value.as_slice()?, present.as_slice()?, seed.as_slice()?);
    let seed_present = seed_present.as_slice()?;
    let bounds = bounds
        .as_slice()?
        .iter()
        .map(|&b| usize::try_from(b))
        .collect::<Result<Vec<usize>, _>>()
        .map_err(|_| PyValueError::new_err("smoothing: run bounds must be >= 0"))?;
    let out = py
        .detach(|| {
            smoothing::seeded_ewm(value, present, &bounds, seed, seed_present, seed_row, alpha)
        })
        .map_err(|e| PyValueError::new_err(e.to_string()))?;
    Ok((
        PyArray1::from_vec(py, out.value),
        PyArray1::from_vec(py, out.present),
    ))
}

/// EMA with `alpha` down each column of `x` (rows x columns), continuing from `last` (one value per
/// column): bit-identical to `scipy.signal.lfilter([alpha], [1, alpha - 1], x, axis=0, zi=(1 - alpha) *
/// last)` (see `smoothing::ema_columns`). ValueError when the shapes do not fit.
#[pyfunction]
fn ema_columns<'py>(
    py: Python<'py>,
    x: PyReadonlyArray2<'py, f64>,
    alpha: f64,
    last: PyReadonlyArray1<'py, f64>,
) -> PyResult<Bound<'py, PyArray2<f64>>> {
    let (rows, cols) = x.as_array().dim();
    let grid = x.as_array().iter().copied().collect::<Vec<f64>>(); // row-major, whatever the layout
    let last = last.as_array().iter().copied().collect::<Vec<f64>>();
    let y = py
        .detach(|| smoothing::ema_columns(&grid, cols, alpha, &last))
        .map_err(|e| PyValueError::new_err(e.to_string()))?;
    PyArray1::from_vec(py, y).reshape([rows, cols])
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(seeded_ewm, m)?)?;
    m.add_function(wrap_pyfunction!(ema_columns, m)?)?;
    Ok(())
}
