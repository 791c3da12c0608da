//! Python wrapper of the sliding-window limiter: one mutex around the core, the monotonic clock read
//! inside the lock (so decisions and their timestamps are ordered), blocking waits with the GIL released.
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use crate::ratelimit::{LimitError, SlidingWindowLimiter as Core, DEFAULT_KEY};

/// Longest sleep between re-checks in `acquire`, so Ctrl-C is seen promptly during long waits.
const SLICE: Duration = Duration::from_millis(100);

fn value_error(e: LimitError) -> PyErr {
    PyValueError::new_err(e.to_string())
}

fn explicit_time(now_ns: i64) -> PyResult<u64> {
    u64::try_from(now_ns)
        .map_err(|_| PyValueError::new_err(format!("now_ns must be >= 0, got {now_ns}")))
}

fn seconds(ns: u64) -> f64 {
    ns as f64 / 1e9
}

/// Exact sliding-window rate limiter over one or more `(limit, window_seconds)` rates, per key, with
/// weights. Thread-safe; the clock is monotonic nanoseconds since the limiter was created (`now_ns()`).
#[pyclass(frozen, subclass, module = "hybridtrader._core")]
pub struct SlidingWindowLimiter {
    core: Mutex<Core>,
    origin: Instant,
}

impl SlidingWindowLimiter {
    #[inline]
    fn lock(&self) -> MutexGuard<'_, Core> {
        // The core never panics while holding the lock, so a poisoned lock still holds a valid state.
        self.core.lock().unwrap_or_else(|p| p.into_inner())
    }

    #[inline]
    fn now(&self) -> u64 {
        self.origin.elapsed().as_nanos() as u64
    }
}

#[pymethods]
impl SlidingWindowLimiter {
    #[new]
    fn new(rates: Vec<(i64, f64)>) -> PyResult<Self> {
        let core = Core::from_secs(&rates).map_err(value_error)?;
        Ok(SlidingWindowLimiter {
            core: Mutex::new(core),
            origin: Instant::now(),
        })
    }

    /// The rates as `(limit, window_seconds)` pairs.
    #[getter]
    fn rates(&self) -> Vec<(u64, f64)> {
        self.lock()
            .rates()
            .iter()
            .map(|r| (r.limit, r.window_secs()))
            .collect()
    }

    /// The limiter's clock: monotonic nanoseconds since it was created.
    fn now_ns(&self) -> u64 {
        self.now()
    }

    /// Admit `weight` for `key` now if every window has room; never blocks.
    #[pyo3(signature = (key=None, weight=1))]
    fn try_acquire(&self, key: Option<&str>, weight: i64) -> PyResult<bool> {
        let key = key.unwrap_or(DEFAULT_KEY);
        let mut core = self.lock();
        let now = self.now();
        core.try_acquire(key, weight, now).map_err(value_error)
    }

    /// `try_acquire` that also returns the limiter time (ns) at which the decision was taken.
    #[pyo3(signature = (key=None, weight=1))]
    fn try_acquire_stamped(&self, key: Option<&str>, weight: i64) -> PyResult<(bool, u64)> {
        let key = key.unwrap_or(DEFAULT_KEY);
        let mut core = self.lock();
        let now = self.now();
        core.try_acquire_stamped(key, weight, now)
            .map_err(value_error)
    }

    /// `try_acquire` at an explicit limiter time `now_ns` (deterministic use and tests).
    #[pyo3(signature = (now_ns, key=None, weight=1))]
    fn try_acquire_at(&self, now_ns: i64, key: Option<&str>, weight: i64) -> PyResult<bool> {
        let key = key.unwrap_or(DEFAULT_KEY);
        let now = explicit_time(now_ns)?;
        self.lock()
            .try_acquire(key, weight, now)
            .map_err(value_error)
    }

    /// Seconds until `weight` would be admitted for `key` if nothing else is admitted meanwhile (0.0: now).
    #[pyo3(signature = (key=None, weight=1))]
    fn wait_time(&self, key: Option<&str>, weight: i64) -> PyResult<f64> {
        let key = key.unwrap_or(DEFAULT_KEY);
        let mut core = self.lock();
        let now = self.now();
        core.wait_ns(key, weight, now)
            .map(seconds)
            .map_err(value_error)
    }

    /// `wait_time` at an explicit limiter time, in nanoseconds.
    #[pyo3(signature = (now_ns, key=None, weight=1))]
    fn wait_ns_at(&self, now_ns: i64, key: Option<&str>, weight: i64) -> PyResult<u64> {
        let key = key.unwrap_or(DEFAULT_KEY);
        let now = explicit_time(now_ns)?;
        self.lock().wait_ns(key, weight, now).map_err(value_error)
    }

    /// One locked step: admit now and return 0.0, or refuse and return the seconds to wait (> 0).
    #[pyo3(signature = (key=None, weight=1))]
    fn poll(&self, key: Option<&str>, weight: i64) -> PyResult<f64> {
        let key = key.unwrap_or(DEFAULT_KEY);
        let mut core = self.lock();
        let now = self.now();
        core.poll(key, weight, now)
            .map(seconds)
            .map_err(value_error)
    }

    /// Block (GIL released) until `weight` is admitted for `key`; `timeout` in seconds (None: no limit).
    /// Returns False as soon as the exact wait exceeds what is left of the timeout: waits only grow while
    /// others are admitted, so sleeping on would not help.
    #[pyo3(signature = (key=None, weight=1, timeout=None))]
    fn acquire(
        &self,
        py: Python<'_>,
        key: Option<&str>,
        weight: i64,
        timeout: Option<f64>,
    ) -> PyResult<bool> {
        let key = key.unwrap_or(DEFAULT_KEY);
        let deadline = match timeout {
            None => None,
            Some(t) if t.is_finite() && t >= 0.0 => {
                Some(self.now().saturating_add((t * 1e9) as u64))
            }
            Some(t) => {
                return Err(PyValueError::new_err(format!(
                    "timeout must be None or a finite number of seconds >= 0, got {t}"
                )))
            }
        };
        loop {
            let (wait, now) = {
                let mut core = self.lock();
                let now = self.now();
                (core.poll(key, weight, now).map_err(value_error)?, now)
            };
            if wait == 0 {
                return Ok(true);
            }
            if let Some(d) = deadline {
                if now.saturating_add(wait) > d {
                    return Ok(false);
                }
            }
            let nap = Duration::from_nanos(wait).min(SLICE);
            py.detach(|| std::thread::sleep(nap));
            py.check_signals()?;
        }
    }

    /// Counters and current usage: `admitted`, `rejected`, `admitted_weight`, `rates`, and per key the
    /// same counters plus `in_window` (weight inside each rate's window now).
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        // Copy out under the lock, build Python objects after releasing it.
        let (rates, keys) = {
            let mut core = self.lock();
            let now = self.now();
            let rates: Vec<(u64, f64)> = core
                .rates()
                .iter()
                .map(|r| (r.limit, r.window_secs()))
                .collect();
            let keys: Vec<(String, u64, u64, u64, Vec<u64>)> = core
                .keys_at(now)
                .into_iter()
                .map(|(k, s)| {
                    (
                        k.to_string(),
                        s.admitted,
                        s.rejected,
                        s.admitted_weight,
                        s.in_window(),
                    )
                })
                .collect();
            (rates, keys)
        };
        let out = PyDict::new(py);
        let per_key = PyDict::new(py);
        let (mut admitted, mut rejected, mut weight) = (0u64, 0u64, 0u64);
        for (k, a, r, w, in_window) in keys {
            admitted += a;
            rejected += r;
            weight += w;
            let d = PyDict::new(py);
            d.set_item("admitted", a)?;
            d.set_item("rejected", r)?;
            d.set_item("admitted_weight", w)?;
            d.set_item("in_window", PyList::new(py, in_window)?)?;
            per_key.set_item(k, d)?;
        }
        out.set_item("admitted", admitted)?;
        out.set_item("rejected", rejected)?;
        out.set_item("admitted_weight", weight)?;
        out.set_item("rates", rates)?;
        out.set_item("keys", per_key)?;
        Ok(out)
    }

    fn __repr__(&self) -> String {
        let rates: Vec<String> = self
            .lock()
            .rates()
            .iter()
            .map(|r| format!("({}, {})", r.limit, r.window_secs()))
            .collect();
        format!("SlidingWindowLimiter([{}])", rates.join(", "))
    }
}
