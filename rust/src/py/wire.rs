//! Python binding of the stream frame fast path (`crate::wire`): `FrameDecoder(provider).decode(raw)`.
use std::collections::HashMap;

use numpy::PyArray1;
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyString, PyTuple};

use crate::wire::{parse_frame, Provider};

/// Symbols seen; past this many distinct names the cache starts over (a bound on memory, not a limit).
const MAX_NAMES: usize = 100_000;

#[pyclass(module = "hybridtrader._core")]
pub struct FrameDecoder {
    provider: Provider,
    /// One Python str per symbol, so every frame hands out the same objects (the bar aggregator's
    /// symbol cache is keyed by object identity).
    names: HashMap<Box<str>, Py<PyString>>,
}

impl FrameDecoder {
    fn symbols<'py>(&mut self, py: Python<'py>, symbols: &[&str]) -> PyResult<Bound<'py, PyList>> {
        if self.names.len() > MAX_NAMES {
            self.names.clear();
        }
        let objs = symbols.iter().map(|&s| match self.names.get(s) {
            Some(obj) => obj.bind(py).clone(),
            None => {
                let obj = PyString::new(py, s);
                self.names.insert(s.into(), obj.clone().unbind());
                obj
            }
        });
        PyList::new(py, objs.collect::<Vec<_>>())
    }

    fn columns<'py>(
        &mut self,
        py: Python<'py>,
        symbols: &[&str],
        ts: Vec<i64>,
        floats: Vec<Vec<f64>>,
        ints: Option<Vec<i64>>,
    ) -> PyResult<Option<Bound<'py, PyTuple>>> {
        if symbols.is_empty() {
            return Ok(None);
        }
        let mut items: Vec<Bound<'py, PyAny>> = vec![
            self.symbols(py, symbols)?.into_any(),
            PyArray1::from_vec(py, ts).into_any(),
        ];
        items.extend(
            floats
                .into_iter()
                .map(|v| PyArray1::from_vec(py, v).into_any()),
        );
        items.extend(ints.map(|v| PyArray1::from_vec(py, v).into_any()));
        PyTuple::new(py, items).map(Some)
    }
}

#[pymethods]
impl FrameDecoder {
    #[new]
    fn new(provider: &str) -> PyResult<Self> {
        let provider = match provider {
            "alpaca" => Provider::Alpaca,
            "polygon" => Provider::Polygon,
            other => {
                return Err(PyValueError::new_err(format!(
                    "provider must be 'alpaca' or 'polygon', got {other:?}"
                )))
            }
        };
        Ok(Self {
            provider,
            names: HashMap::new(),
        })
    }

    /// `(messages, trades, quotes, bars)` of a JSON frame made only of well-formed trades, quotes and
    /// bars, each kind `None` or a tuple of columns (symbols list, ts int64 ns, then the float columns in
    /// schema order, bars ending with the int64 trade count, -1 where unknown); `None` for any other frame.
    fn decode<'py>(
        &mut self,
        py: Python<'py>,
        raw: &Bound<'py, PyAny>,
    ) -> PyResult<Option<Bound<'py, PyTuple>>> {
        let text = if let Ok(b) = raw.cast::<PyBytes>() {
            b.as_bytes()
        } else if let Ok(s) = raw.cast::<PyString>() {
            s.to_str()?.as_bytes()
        } else {
            return Err(PyTypeError::new_err("a frame is bytes or str"));
        };
        let Some(p) = parse_frame(text, self.provider) else {
            return Ok(None);
        };
        let (t, q, b) = (p.trades, p.quotes, p.bars);
        let trades = self.columns(py, &t.symbol, t.ts, vec![t.price, t.size], None)?;
        let quotes = self.columns(
            py,
            &q.symbol,
            q.ts,
            vec![q.bid, q.ask, q.bid_size, q.ask_size],
            None,
        )?;
        let floats = vec![b.open, b.high, b.low, b.close, b.volume, b.vwap];
        let bars = self.columns(py, &b.symbol, b.ts, floats, Some(b.trades))?;
        let out = (p.messages, trades, quotes, bars).into_pyobject(py)?;
        Ok(Some(out))
    }
}
