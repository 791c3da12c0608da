//! PyO3 wrappers, one file per domain.
use pyo3::prelude::*;

mod bars;
mod exposure;
mod fills;
mod ratelimit;
mod slippage;
mod wire;

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    bars::register(m)?;
    m.add_class::<exposure::ExposureCore>()?;
    m.add_class::<fills::PyFillSimulator>()?;
    m.add_class::<ratelimit::SlidingWindowLimiter>()?;
    slippage::register(m)?;
    m.add_class::<wire::FrameDecoder>()?;
    Ok(())
}
