//! Python binding of the LightGBM text-model predictor (`hybridtrader.ml.models`): the model text and a
//! float64 matrix in, probabilities out, read and computed without the GIL.
use numpy::{PyArray1, PyReadonlyArray2, PyUntypedArrayMethods};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use crate::forest::Forest;

/// Probabilities of the rows of `x` under the first `num_iteration` trees (0: all) of a LightGBM binary
/// model given as text (see `forest::Forest`), on up to `threads` threads; a ValueError names a model it
/// does not cover.
#[pyfunction]
fn lightgbm_probabilities<'py>(
    py: Python<'py>,
    model: &str,
    x: PyReadonlyArray2<'py, f64>,
    num_iteration: usize,
    threads: usize,
) -> PyResult<Bound<'py, PyArray1<f64>>> {
    let cols = x.shape()[1];
    let values = x.as_slice()?;
    let out = py
        .detach(|| {
            let forest = Forest::from_lightgbm(model, num_iteration)?;
            if forest.n_features() != cols {
                return Err(crate::forest::ForestError(format!(
                    "the model reads {} features, x has {cols} columns",
                    forest.n_features()
                )));
            }
            forest.predict(values, threads)
        })
        .map_err(|e| PyValueError::new_err(e.to_string()))?;
    Ok(PyArray1::from_vec(py, out))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(lightgbm_probabilities, m)?)?;
    Ok(())
}
