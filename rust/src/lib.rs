//! hybridtrader-core: the hot paths of hybridtrader as plain Rust, plus a thin PyO3 layer in `py/`.

pub mod bars;
pub mod blake2b;
pub mod civil;
pub mod common;
pub mod exposure;
pub mod fills;
pub mod flow;
pub mod forest;
pub mod labels;
pub mod ledger;
pub mod orders;
pub mod ratelimit;
pub mod slippage;
pub mod smoothing;
pub mod wire;

#[cfg(feature = "python")]
mod py;

#[cfg(feature = "python")]
#[pyo3::pymodule]
fn _core(m: &pyo3::Bound<'_, pyo3::types::PyModule>) -> pyo3::PyResult<()> {
    py::register(m)
}
