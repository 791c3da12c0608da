//! Python bindings of the labels' exit scans (`hybridtrader.ml.labels`): numpy columns in, the exit row
//! and kind of each event out, the scan run without the GIL.
use numpy::{PyArray1, PyReadonlyArray1};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use crate::labels::{self, Exits, LabelError};

type ExitArrays<'py> = (Bound<'py, PyArray1<i64>>, Bound<'py, PyArray1<i8>>);

fn to_arrays(py: Python<'_>, exits: Result<Exits, LabelError>) -> PyResult<ExitArrays<'_>> {
    let e = exits.map_err(|e| PyValueError::new_err(e.to_string()))?;
    Ok((
        PyArray1::from_vec(py, e.row),
        PyArray1::from_vec(py, e.kind),
    ))
}

/// Mean-reversion exits (see `labels::reversion_exits`).
#[pyfunction]
fn reversion_exits<'py>(
    py: Python<'py>,
    close: PyReadonlyArray1<'py, f64>,
    rows: PyReadonlyArray1<'py, i64>,
    room: PyReadonlyArray1<'py, i64>,
    side: PyReadonlyArray1<'py, f64>,
    mean: PyReadonlyArray1<'py, f64>,
) -> PyResult<ExitArrays<'py>> {
    let (close, rows, room) = (close.as_slice()?, rows.as_slice()?, room.as_slice()?);
    let (side, mean) = (side.as_slice()?, mean.as_slice()?);
    let exits = py.detach(|| labels::reversion_exits(close, rows, room, side, mean));
    to_arrays(py, exits)
}

/// Triple-barrier exits (see `labels::barrier_exits`).
#[pyfunction]
fn barrier_exits<'py>(
    py: Python<'py>,
    close: PyReadonlyArray1<'py, f64>,
    rows: PyReadonlyArray1<'py, i64>,
    room: PyReadonlyArray1<'py, i64>,
    side: PyReadonlyArray1<'py, f64>,
    upper: PyReadonlyArray1<'py, f64>,
    lower: PyReadonlyArray1<'py, f64>,
) -> PyResult<ExitArrays<'py>> {
    let (close, rows, room) = (close.as_slice()?, rows.as_slice()?, room.as_slice()?);
    let (side, upper, lower) = (side.as_slice()?, upper.as_slice()?, lower.as_slice()?);
    let exits = py.detach(|| labels::barrier_exits(close, rows, room, side, upper, lower));
    to_arrays(py, exits)
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(reversion_exits, m)?)?;
    m.add_function(wrap_pyfunction!(barrier_exits, m)?)?;
    Ok(())
}
