//! PyO3 wrappers, one file per domain.
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use crate::common::Side;

mod bars;
mod exposure;
mod fills;
mod flow;
mod forest;
mod labels;
mod ledger;
mod orders;
mod ratelimit;
mod slippage;
mod smoothing;
mod wire;

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    bars::register(m)?;
    m.add_class::<exposure::ExposureCore>()?;
    m.add_class::<fills::PyFillSimulator>()?;
    m.add_class::<flow::PyOrderFlow>()?;
    forest::register(m)?;
    labels::register(m)?;
    m.add_class::<ledger::PyLedger>()?;
    m.add_class::<ledger::PyPosition>()?;
    m.add_function(pyo3::wrap_pyfunction!(ledger::marked_values, m)?)?;
    m.add_class::<orders::PyOrder>()?;
    m.add_class::<orders::PyOrderRequest>()?;
    m.add_function(pyo3::wrap_pyfunction!(orders::order_columns, m)?)?;
    m.add_function(pyo3::wrap_pyfunction!(orders::client_order_id, m)?)?;
    m.add_class::<ratelimit::SlidingWindowLimiter>()?;
    slippage::register(m)?;
    smoothing::register(m)?;
    m.add_class::<wire::FrameDecoder>()?;
    Ok(())
}

/// An order side from Python: "buy" or "sell".
fn parse_side(side: &str) -> PyResult<Side> {
    Side::parse(side)
        .ok_or_else(|| PyValueError::new_err(format!("side must be 'buy' or 'sell', got {side:?}")))
}
