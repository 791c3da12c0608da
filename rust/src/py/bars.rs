//! Python bindings of the bar engine: the streaming `BarAggregator` and the batch helpers behind
//! `hybridtrader.market.aggregate_trades` / `aggregate_quotes`.
use std::borrow::Cow;

use numpy::{
    AllowTypeChange, PyArray1, PyArrayDescrMethods, PyArrayLike1, PyReadonlyArray1, PyUntypedArray,
    PyUntypedArrayMethods,
};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString, PyTuple};

use crate::bars::{
    aggregate, aggregate_hashed, aggregate_runs, codes_from_hashes, order_by_key, parse_every,
    view_runs, Aggregator, BarColumns, BarError, Column, ColumnRef, QuoteBars, Quotes, Rule, Stats,
    TradeBars, Trades,
};
use crate::common::SymbolTable;

fn value_error(e: BarError) -> PyErr {
    PyValueError::new_err(e.0)
}

/// Builds the rule from the keyword arguments shared by the class and the batch functions.
fn rule_from_args(
    every: Option<&Bound<'_, PyAny>>,
    ticks: Option<i64>,
    volume: Option<f64>,
    dollars: Option<f64>,
    origin: i64,
) -> PyResult<Rule> {
    let given = [
        every.is_some(),
        ticks.is_some(),
        volume.is_some(),
        dollars.is_some(),
    ];
    if given.iter().filter(|&&g| g).count() != 1 {
        return Err(PyValueError::new_err(
            "give exactly one of every=, ticks=, volume=, dollars= (e.g. every=\"1m\")",
        ));
    }
    let rule = if let Some(every) = every {
        let ns = if let Ok(text) = every.cast::<PyString>() {
            parse_every(text.to_str()?).map_err(value_error)?
        } else if let Ok(ns) = every.extract::<i64>() {
            ns
        } else {
            return Err(PyValueError::new_err(format!(
                "every must be an interval string like \"1m\" or an int of nanoseconds, got {every}"
            )));
        };
        Rule::Time { every: ns, origin }
    } else if let Some(n) = ticks {
        if n <= 0 {
            return Err(PyValueError::new_err(format!(
                "ticks must be a positive integer, got {n}"
            )));
        }
        Rule::Ticks(n as u64)
    } else if let Some(v) = volume {
        Rule::Volume(v)
    } else {
        Rule::Dollars(dollars.unwrap_or(f64::NAN))
    };
    rule.validate().map_err(|_| {
        PyValueError::new_err(format!(
            "bar size must be positive and finite: every={every:?} ticks={ticks:?} volume={volume:?} dollars={dollars:?}"
        ))
    })
}

fn stats_dict<'py>(py: Python<'py>, s: Stats) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("ticks", s.ticks)?;
    d.set_item("bars", s.bars)?;
    d.set_item("late", s.late)?;
    d.set_item("rejected", s.rejected)?;
    Ok(d)
}

/// A contiguous view of a numpy array, or a copy of a strided one.
fn values<'a, T: numpy::Element + Copy>(arr: &'a PyReadonlyArray1<'_, T>) -> Cow<'a, [T]> {
    match arr.as_slice() {
        Ok(s) => Cow::Borrowed(s),
        Err(_) => Cow::Owned(arr.as_array().iter().copied().collect()),
    }
}

/// Numpy arrays of the columns after `symbol` (moved out of `bars`, no copy).
fn columns_tuple<'py>(
    py: Python<'py>,
    bars: &mut impl BarColumns,
) -> PyResult<Bound<'py, PyTuple>> {
    let arrays = bars.take_columns().into_iter().map(|c| match c {
        Column::F64(v) => PyArray1::from_vec(py, v).into_any(),
        Column::I64(v) => PyArray1::from_vec(py, v).into_any(),
    });
    PyTuple::new(py, arrays)
}

/// One tuple per bar (symbol, then the other columns in schema order); `bars` is cleared.
fn row_tuples<'py>(
    py: Python<'py>,
    names: &[Py<PyString>],
    bars: &mut impl BarColumns,
) -> PyResult<Bound<'py, PyTuple>> {
    if bars.is_empty() {
        return Ok(PyTuple::empty(py)); // the usual case of a single tick: nothing to build
    }
    let cols = bars.columns();
    let mut rows = Vec::with_capacity(bars.len());
    for (i, &id) in bars.symbols().iter().enumerate() {
        let mut row = vec![names[id as usize].bind(py).clone().into_any()];
        for c in &cols {
            row.push(match c {
                ColumnRef::F64(v) => v[i].into_pyobject(py)?.into_any(),
                ColumnRef::I64(v) => v[i].into_pyobject(py)?.into_any(),
            });
        }
        rows.push(PyTuple::new(py, row)?);
    }
    drop(cols);
    bars.clear();
    PyTuple::new(py, rows)
}

/// The result of a hashed batch function: symbol codes, first row of each code, the other columns, stats.
fn hashed_bars<'py>(
    py: Python<'py>,
    bars: impl BarColumns,
    first_rows: Vec<usize>,
    stats: Stats,
) -> PyResult<HashedBatchBars<'py>> {
    let (sym, cols, stats) = batch_bars(py, bars, stats)?;
    Ok((sym, rows_array(py, first_rows), cols, stats))
}

/// The result of a batch function: symbol codes, the other columns, stats.
fn batch_bars<'py>(
    py: Python<'py>,
    mut bars: impl BarColumns,
    stats: Stats,
) -> PyResult<BatchBars<'py>> {
    let sym = PyArray1::from_slice(py, bars.symbols());
    Ok((sym, columns_tuple(py, &mut bars)?, stats_dict(py, stats)?))
}

/// The tick kind a method is for (an aggregator serves one).
#[derive(Clone, Copy)]
enum Source {
    Trades,
    Quotes,
}

enum Engine {
    Trades(Aggregator<Trades>, TradeBars),
    Quotes(Aggregator<Quotes>, QuoteBars),
}

const CACHE_SLOTS: usize = 64;

/// Streaming bars from ticks of many symbols. See `_core.pyi` for the Python-facing documentation; the
/// methods that hand out bars return columns, which `hybridtrader.market.bars.BarAggregator` wraps into
/// Polars frames.
#[pyclass(name = "BarAggregatorCore", module = "hybridtrader._core", subclass)]
pub struct BarAggregator {
    engine: Engine,
    table: SymbolTable,
    /// Python str of each symbol id, shared by every bar emitted.
    names: Vec<Py<PyString>>,
    /// Direct-mapped cache from a str object's address to its id. Holding the object keeps the address
    /// from being reused by another string while it is cached.
    cache: Vec<Option<(Py<PyAny>, u32)>>,
}

impl BarAggregator {
    #[inline]
    fn symbol_id(&mut self, symbol: &Bound<'_, PyAny>) -> PyResult<u32> {
        let addr = symbol.as_ptr() as usize;
        let slot = (addr >> 4) % CACHE_SLOTS;
        if let Some((obj, id)) = &self.cache[slot] {
            if obj.as_ptr() as usize == addr {
                return Ok(*id);
            }
        }
        let text = match symbol.cast::<PyString>() {
            Ok(text) => text,
            Err(_) => {
                return Err(PyValueError::new_err(format!(
                    "symbol must be a str, got {}",
                    symbol.repr()?
                )))
            }
        };
        let name = text.to_str()?;
        let id = match self.table.get(name) {
            Some(id) => id,
            None => {
                let id = self.table.intern(name);
                self.names.push(PyString::new(symbol.py(), name).unbind());
                id
            }
        };
        self.cache[slot] = Some((symbol.clone().unbind(), id));
        Ok(id)
    }

    /// Ids for a batch: an integer array of ids from `intern`, or any sequence of str.
    fn symbol_ids(&mut self, symbols: &Bound<'_, PyAny>) -> PyResult<Vec<u32>> {
        if let Ok(arr) = symbols.extract::<PyReadonlyArray1<'_, u32>>() {
            let ids = values(&arr).into_owned();
            self.check_ids(&ids)?;
            return Ok(ids);
        }
        if let Ok(arr) = symbols.cast::<PyUntypedArray>() {
            if matches!(arr.dtype().kind(), b'i' | b'u') {
                let wide: PyArrayLike1<'_, i64, AllowTypeChange> = symbols.extract()?;
                let ids: Vec<u32> = values(&wide)
                    .iter()
                    .map(|&i| u32::try_from(i).unwrap_or(u32::MAX))
                    .collect();
                self.check_ids(&ids)?;
                return Ok(ids);
            }
        }
        let mut ids = Vec::with_capacity(symbols.len().unwrap_or(0));
        for item in symbols.try_iter()? {
            ids.push(self.symbol_id(&item?)?);
        }
        Ok(ids)
    }

    fn check_ids(&self, ids: &[u32]) -> PyResult<()> {
        match ids.iter().find(|&&i| i as usize >= self.names.len()) {
            Some(bad) => Err(PyValueError::new_err(format!(
                "symbols: id {bad} was not returned by intern() (known symbols: {})",
                self.names.len()
            ))),
            None => Ok(()),
        }
    }

    /// Takes the pending bars as (symbols, columns after the symbol).
    fn take_pending<'py>(
        &mut self,
        py: Python<'py>,
    ) -> PyResult<(Bound<'py, PyList>, Bound<'py, PyTuple>)> {
        fn take<'py>(
            py: Python<'py>,
            names: &[Py<PyString>],
            out: &mut impl BarColumns,
        ) -> PyResult<(Bound<'py, PyList>, Bound<'py, PyTuple>)> {
            let symbol = PyList::new(
                py,
                out.symbols().iter().map(|&i| names[i as usize].bind(py)),
            )?;
            let cols = columns_tuple(py, out)?;
            out.clear();
            Ok((symbol, cols))
        }
        let names = &self.names;
        match &mut self.engine {
            Engine::Trades(_, out) => take(py, names, out),
            Engine::Quotes(_, out) => take(py, names, out),
        }
    }

    /// Takes the pending bars as one tuple (symbols, columns...), or None when there are none.
    fn pending_columns<'py>(&mut self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyTuple>>> {
        let (symbol, cols) = self.take_pending(py)?;
        if symbol.is_empty() {
            return Ok(None);
        }
        let items = std::iter::once(symbol.into_any()).chain(cols.iter());
        PyTuple::new(py, items.collect::<Vec<_>>()).map(Some)
    }

    fn wrong_source(&self, wanted: &str) -> PyErr {
        PyValueError::new_err(format!(
            "this aggregator was built with source={:?}; use the {wanted} methods",
            self.source()
        ))
    }

    /// A clear error when a method of the other source is called (naming the methods to use).
    fn check_source(&self, wanted: Source) -> PyResult<()> {
        match (&self.engine, wanted) {
            (Engine::Trades(..), Source::Trades) | (Engine::Quotes(..), Source::Quotes) => Ok(()),
            (_, Source::Trades) => Err(self.wrong_source("quote")),
            (_, Source::Quotes) => Err(self.wrong_source("trade")),
        }
    }

    /// One tick of `source`; returns the bars it completed as tuples (usually none).
    fn push_tick<'py>(
        &mut self,
        py: Python<'py>,
        source: Source,
        symbol: &Bound<'py, PyAny>,
        ts: i64,
        a: f64,
        b: f64,
    ) -> PyResult<Bound<'py, PyTuple>> {
        self.check_source(source)?;
        let id = self.symbol_id(symbol)?;
        let names = &self.names;
        match &mut self.engine {
            Engine::Trades(agg, out) => {
                agg.push(id, ts, (a, b), out);
                row_tuples(py, names, out)
            }
            Engine::Quotes(agg, out) => {
                agg.push(id, ts, (a, b), out);
                row_tuples(py, names, out)
            }
        }
    }

    fn push_arrays<'py>(
        &mut self,
        py: Python<'py>,
        source: Source,
        symbols: &Bound<'py, PyAny>,
        ts: PyArrayLike1<'py, i64, AllowTypeChange>,
        a: PyArrayLike1<'py, f64, AllowTypeChange>,
        b: PyArrayLike1<'py, f64, AllowTypeChange>,
    ) -> PyResult<()> {
        self.check_source(source)?;
        let ids = self.symbol_ids(symbols)?;
        let (ts, a, b) = (values(&ts), values(&a), values(&b));
        let n = ids.len();
        if ts.len() != n || a.len() != n || b.len() != n {
            return Err(PyValueError::new_err(format!(
                "columns differ in length: symbols {n}, ts {}, values {} and {}",
                ts.len(),
                a.len(),
                b.len()
            )));
        }
        let engine = &mut self.engine;
        py.detach(|| match engine {
            Engine::Trades(agg, out) => {
                agg.push_many(&ids, &ts, a.iter().copied().zip(b.iter().copied()), out);
            }
            Engine::Quotes(agg, out) => {
                agg.push_many(&ids, &ts, a.iter().copied().zip(b.iter().copied()), out);
            }
        });
        Ok(())
    }
}

#[pymethods]
impl BarAggregator {
    #[new]
    #[pyo3(signature = (*, every=None, ticks=None, volume=None, dollars=None, origin=0, source="trades"))]
    fn new(
        every: Option<&Bound<'_, PyAny>>,
        ticks: Option<i64>,
        volume: Option<f64>,
        dollars: Option<f64>,
        origin: i64,
        source: &str,
    ) -> PyResult<Self> {
        let rule = rule_from_args(every, ticks, volume, dollars, origin)?;
        let engine = match source {
            "trades" => Engine::Trades(
                Aggregator::new(rule).map_err(value_error)?,
                TradeBars::default(),
            ),
            "quotes" => Engine::Quotes(
                Aggregator::new(rule).map_err(|_| {
                    PyValueError::new_err("quote bars support every= or ticks= only")
                })?,
                QuoteBars::default(),
            ),
            other => return Err(bad_source(other)),
        };
        Ok(BarAggregator {
            engine,
            table: SymbolTable::default(),
            names: Vec::new(),
            cache: (0..CACHE_SLOTS).map(|_| None).collect(),
        })
    }

    /// "trades" or "quotes".
    #[getter]
    fn source(&self) -> &'static str {
        match self.engine {
            Engine::Trades(..) => "trades",
            Engine::Quotes(..) => "quotes",
        }
    }

    /// Known symbols, indexed by id.
    #[getter]
    fn symbols<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        PyList::new(py, self.names.iter().map(|n| n.bind(py)))
    }

    /// Ids of `names` (assigning new ids to new symbols), for the fast integer path of `push_many`.
    fn intern<'py>(
        &mut self,
        py: Python<'py>,
        names: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyArray1<u32>>> {
        let mut ids = Vec::with_capacity(names.len().unwrap_or(0));
        for item in names.try_iter()? {
            ids.push(self.symbol_id(&item?)?);
        }
        Ok(PyArray1::from_vec(py, ids))
    }

    fn push<'py>(
        &mut self,
        py: Python<'py>,
        symbol: &Bound<'py, PyAny>,
        ts: i64,
        price: f64,
        size: f64,
    ) -> PyResult<Bound<'py, PyTuple>> {
        self.push_tick(py, Source::Trades, symbol, ts, price, size)
    }

    fn push_quote<'py>(
        &mut self,
        py: Python<'py>,
        symbol: &Bound<'py, PyAny>,
        ts: i64,
        bid: f64,
        ask: f64,
    ) -> PyResult<Bound<'py, PyTuple>> {
        self.push_tick(py, Source::Quotes, symbol, ts, bid, ask)
    }

    fn push_many_columns<'py>(
        &mut self,
        py: Python<'py>,
        symbols: &Bound<'py, PyAny>,
        ts: PyArrayLike1<'py, i64, AllowTypeChange>,
        price: PyArrayLike1<'py, f64, AllowTypeChange>,
        size: PyArrayLike1<'py, f64, AllowTypeChange>,
    ) -> PyResult<Option<Bound<'py, PyTuple>>> {
        self.push_arrays(py, Source::Trades, symbols, ts, price, size)?;
        self.pending_columns(py)
    }

    fn feed_many<'py>(
        &mut self,
        py: Python<'py>,
        symbols: &Bound<'py, PyAny>,
        ts: PyArrayLike1<'py, i64, AllowTypeChange>,
        price: PyArrayLike1<'py, f64, AllowTypeChange>,
        size: PyArrayLike1<'py, f64, AllowTypeChange>,
    ) -> PyResult<()> {
        self.push_arrays(py, Source::Trades, symbols, ts, price, size)
    }

    fn flush_columns<'py>(
        &mut self,
        py: Python<'py>,
        now_ts: i64,
    ) -> PyResult<Option<Bound<'py, PyTuple>>> {
        match &mut self.engine {
            Engine::Trades(agg, out) => agg.flush(now_ts, out),
            Engine::Quotes(agg, out) => agg.flush(now_ts, out),
        }
        self.pending_columns(py)
    }

    fn push_quotes_many_columns<'py>(
        &mut self,
        py: Python<'py>,
        symbols: &Bound<'py, PyAny>,
        ts: PyArrayLike1<'py, i64, AllowTypeChange>,
        bid: PyArrayLike1<'py, f64, AllowTypeChange>,
        ask: PyArrayLike1<'py, f64, AllowTypeChange>,
    ) -> PyResult<Option<Bound<'py, PyTuple>>> {
        self.push_arrays(py, Source::Quotes, symbols, ts, bid, ask)?;
        self.pending_columns(py)
    }

    fn close_columns<'py>(&mut self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyTuple>>> {
        match &mut self.engine {
            Engine::Trades(agg, out) => agg.close(out),
            Engine::Quotes(agg, out) => agg.close(out),
        }
        self.pending_columns(py)
    }

    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let s = match &self.engine {
            Engine::Trades(agg, _) => agg.stats(),
            Engine::Quotes(agg, _) => agg.stats(),
        };
        stats_dict(py, s)
    }

    fn __repr__(&self) -> String {
        let rule = match &self.engine {
            Engine::Trades(agg, _) => agg.rule(),
            Engine::Quotes(agg, _) => agg.rule(),
        };
        format!(
            "BarAggregator({rule:?}, source={:?}, symbols={})",
            self.source(),
            self.names.len()
        )
    }
}

/// (codes, first row of each code).
type Codes<'py> = (Bound<'py, PyArray1<u32>>, Bound<'py, PyArray1<u64>>);
/// (run lengths, first row of each run).
type Runs<'py> = (Bound<'py, PyArray1<u64>>, Bound<'py, PyArray1<u64>>);
/// (symbol codes, other columns, stats).
type BatchBars<'py> = (
    Bound<'py, PyArray1<u32>>,
    Bound<'py, PyTuple>,
    Bound<'py, PyDict>,
);
/// (symbol codes, first row of each code, other columns, stats).
type HashedBatchBars<'py> = (
    Bound<'py, PyArray1<u32>>,
    Bound<'py, PyArray1<u64>>,
    Bound<'py, PyTuple>,
    Bound<'py, PyDict>,
);

fn rows_array(py: Python<'_>, rows: Vec<usize>) -> Bound<'_, PyArray1<u64>> {
    PyArray1::from_vec(py, rows.into_iter().map(|i| i as u64).collect())
}

/// Dense codes from two independent hashes of a symbol column (see `bars::codes_from_hashes`); None when
/// the hashes collide.
#[pyfunction]
fn bar_codes_from_hashes<'py>(
    py: Python<'py>,
    h1: PyReadonlyArray1<'py, u64>,
    h2: PyReadonlyArray1<'py, u64>,
) -> PyResult<Option<Codes<'py>>> {
    let (a, b) = (values(&h1), values(&h2));
    Ok(py
        .detach(|| codes_from_hashes(&a, &b))
        .ok()
        .map(|(codes, first)| (PyArray1::from_vec(py, codes), rows_array(py, first))))
}

/// Batch bars over whole columns with symbol codes `< n_symbols` (see `bars::aggregate`).
#[pyfunction]
#[pyo3(signature = (source, codes, n_symbols, ts, a, b, *, every=None, ticks=None, volume=None, dollars=None, origin=0))]
#[allow(clippy::too_many_arguments)]
fn aggregate_bars<'py>(
    py: Python<'py>,
    source: &str,
    codes: PyReadonlyArray1<'py, u32>,
    n_symbols: usize,
    ts: PyReadonlyArray1<'py, i64>,
    a: PyReadonlyArray1<'py, f64>,
    b: PyReadonlyArray1<'py, f64>,
    every: Option<&Bound<'py, PyAny>>,
    ticks: Option<i64>,
    volume: Option<f64>,
    dollars: Option<f64>,
    origin: i64,
) -> PyResult<BatchBars<'py>> {
    let rule = rule_from_args(every, ticks, volume, dollars, origin)?;
    let (codes, ts, a, b) = (values(&codes), values(&ts), values(&a), values(&b));
    match source {
        "trades" => {
            let (bars, stats) = py
                .detach(|| aggregate::<Trades>(rule, &codes, n_symbols, &ts, &a, &b))
                .map_err(value_error)?;
            batch_bars(py, bars, stats)
        }
        "quotes" => {
            let (bars, stats) = py
                .detach(|| aggregate::<Quotes>(rule, &codes, n_symbols, &ts, &a, &b))
                .map_err(value_error)?;
            batch_bars(py, bars, stats)
        }
        other => Err(bad_source(other)),
    }
}

fn bad_source(other: &str) -> PyErr {
    PyValueError::new_err(format!(
        "source must be \"trades\" or \"quotes\", got {other:?}"
    ))
}

/// Batch bars with symbols given by two hashes per row (see `bars::aggregate_hashed`); None when the
/// hashes collide.
#[pyfunction]
#[pyo3(signature = (source, h1, h2, ts, a, b, *, every=None, ticks=None, volume=None, dollars=None, origin=0))]
#[allow(clippy::too_many_arguments)]
fn aggregate_bars_hashed<'py>(
    py: Python<'py>,
    source: &str,
    h1: PyReadonlyArray1<'py, u64>,
    h2: PyReadonlyArray1<'py, u64>,
    ts: PyReadonlyArray1<'py, i64>,
    a: PyReadonlyArray1<'py, f64>,
    b: PyReadonlyArray1<'py, f64>,
    every: Option<&Bound<'py, PyAny>>,
    ticks: Option<i64>,
    volume: Option<f64>,
    dollars: Option<f64>,
    origin: i64,
) -> PyResult<Option<HashedBatchBars<'py>>> {
    let rule = rule_from_args(every, ticks, volume, dollars, origin)?;
    let (h1, h2, ts, a, b) = (
        values(&h1),
        values(&h2),
        values(&ts),
        values(&a),
        values(&b),
    );
    if ts.len() != h1.len() || a.len() != h1.len() || b.len() != h1.len() || h2.len() != h1.len() {
        return Err(PyValueError::new_err("columns differ in length"));
    }
    match source {
        "trades" => match py.detach(|| aggregate_hashed::<Trades>(rule, &h1, &h2, &ts, &a, &b)) {
            Ok(r) => hashed_bars(py, r.bars, r.first_rows, r.stats).map(Some),
            Err(_) => Ok(None),
        },
        "quotes" => match py.detach(|| aggregate_hashed::<Quotes>(rule, &h1, &h2, &ts, &a, &b)) {
            Ok(r) => hashed_bars(py, r.bars, r.first_rows, r.stats).map(Some),
            Err(_) => Ok(None),
        },
        other => Err(bad_source(other)),
    }
}

/// Batch bars for rows grouped by symbol, symbol `k` being the `k`-th run (see `bars::aggregate_runs`).
#[pyfunction]
#[pyo3(signature = (source, run_lengths, ts, a, b, *, every=None, ticks=None, volume=None, dollars=None, origin=0))]
#[allow(clippy::too_many_arguments)]
fn aggregate_bars_runs<'py>(
    py: Python<'py>,
    source: &str,
    run_lengths: PyReadonlyArray1<'py, u64>,
    ts: PyReadonlyArray1<'py, i64>,
    a: PyReadonlyArray1<'py, f64>,
    b: PyReadonlyArray1<'py, f64>,
    every: Option<&Bound<'py, PyAny>>,
    ticks: Option<i64>,
    volume: Option<f64>,
    dollars: Option<f64>,
    origin: i64,
) -> PyResult<BatchBars<'py>> {
    let rule = rule_from_args(every, ticks, volume, dollars, origin)?;
    let (runs, ts, a, b) = (values(&run_lengths), values(&ts), values(&a), values(&b));
    match source {
        "trades" => {
            let (bars, stats) = py
                .detach(|| aggregate_runs::<Trades>(rule, &runs, &ts, &a, &b))
                .map_err(value_error)?;
            batch_bars(py, bars, stats)
        }
        "quotes" => {
            let (bars, stats) = py
                .detach(|| aggregate_runs::<Quotes>(rule, &runs, &ts, &a, &b))
                .map_err(value_error)?;
            batch_bars(py, bars, stats)
        }
        other => Err(bad_source(other)),
    }
}

/// Runs of a string column from its Arrow views (see `bars::view_runs`): (run lengths, first row of each
/// run), or None when a symbol has two runs or is longer than 12 bytes.
#[pyfunction]
fn bar_view_runs<'py>(
    py: Python<'py>,
    views: PyReadonlyArray1<'py, u64>,
) -> PyResult<Option<Runs<'py>>> {
    let views = values(&views);
    Ok(py
        .detach(|| view_runs(&views))
        .map_err(value_error)?
        .map(|(lengths, first_rows)| (PyArray1::from_vec(py, lengths), rows_array(py, first_rows))))
}

/// The stable permutation ordering rows by `key[symbols]` (see `bars::order_by_key`).
#[pyfunction]
fn bar_order<'py>(
    py: Python<'py>,
    symbols: PyReadonlyArray1<'py, u32>,
    key: PyReadonlyArray1<'py, u32>,
) -> PyResult<Bound<'py, PyArray1<u64>>> {
    let (s, k) = (values(&symbols), values(&key));
    let perm = py.detach(|| order_by_key(&s, &k)).map_err(value_error)?;
    Ok(rows_array(py, perm))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<BarAggregator>()?;
    m.add_function(wrap_pyfunction!(bar_codes_from_hashes, m)?)?;
    m.add_function(wrap_pyfunction!(aggregate_bars, m)?)?;
    m.add_function(wrap_pyfunction!(aggregate_bars_hashed, m)?)?;
    m.add_function(wrap_pyfunction!(aggregate_bars_runs, m)?)?;
    m.add_function(wrap_pyfunction!(bar_order, m)?)?;
    m.add_function(wrap_pyfunction!(bar_view_runs, m)?)?;
    Ok(())
}
