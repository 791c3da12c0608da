//! Slippage model: expected execution cost in basis points of a marketable order.
//!
//! cost_bps = min(cap, spread_bps(symbol, time of day) / 2 + coef * daily_vol_bps * (qty / ADV)^exponent)
//!
//! The impact term is the power law of Almgren, Thum, Hauptmann & Li (2005) (exponent 0.6; 0.5 gives the
//! square-root law). `coef` is learned per symbol from fills with a robust online regression; the spread is
//! a time-of-day profile (buckets of `bucket_minutes` from the 09:30 New York open) learned from quote bars;
//! ADV and daily volatility come from daily bars. Anything a symbol has not learned yet falls back to a
//! pooled prior learned from every symbol, and that to the configured prior.
//!
//! Time of day is derived from the UTC timestamp here (US Eastern DST rules below), so callers pass plain
//! epoch nanoseconds and the batch path needs no time zone database. Timestamps outside the regular session
//! use the nearest bucket (pre-open: the first, after the close: the last).

use crate::civil::{ny_minute_of_day, NyClock};
use crate::common::{FastMap, Side};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Version of the JSON state file written by [`SlippageModel::save`].
pub const FORMAT_VERSION: u32 = 1;
/// Minutes in a regular NYSE session (09:30-16:00 New York).
pub const SESSION_MINUTES: u32 = 390;
const OPEN_MINUTE: i64 = 9 * 60 + 30;
/// Huber tuning constant (95% efficiency under Gaussian noise).
const HUBER_K: f64 = 1.345;
/// sigma = median(|r|) / 0.6745 for Gaussian residuals.
const MEDIAN_ABS_TO_SIGMA: f64 = 1.482_602_218_505_602;
/// The median tracker's step decays as n^-0.7 (a Robbins-Monro schedule that still moves a badly
/// initialised scale by orders of magnitude within a few hundred fills).
const SCALE_STEP_DECAY: f64 = 0.7;
const MIN_SCALE_BPS: f64 = 1e-3;

// ------------------------------------------------------------------------------------------- errors
#[derive(Debug)]
pub enum SlippageError {
    /// A bad argument: the parameter name and what is wrong with it.
    Invalid(String),
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    Corrupt {
        path: PathBuf,
        detail: String,
    },
    UnknownVersion {
        path: PathBuf,
        found: u64,
    },
    Incompatible {
        path: PathBuf,
        detail: String,
    },
}

impl fmt::Display for SlippageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Invalid(m) => write!(f, "{m}"),
            Self::Io { path, source } => write!(f, "slippage state file {}: {source}", path.display()),
            Self::Corrupt { path, detail } => {
                write!(f, "slippage state file {} is corrupt: {detail}", path.display())
            }
            Self::UnknownVersion { path, found } => write!(
                f,
                "slippage state file {} has format_version {found}; this version reads 1 to {FORMAT_VERSION}",
                path.display()
            ),
            Self::Incompatible { path, detail } => {
                write!(f, "slippage state file {} does not fit this model: {detail}", path.display())
            }
        }
    }
}

impl std::error::Error for SlippageError {}

fn invalid(msg: String) -> SlippageError {
    SlippageError::Invalid(msg)
}

// ------------------------------------------------------------------------------------------- inputs
fn check_positive(name: &str, v: f64) -> Result<(), SlippageError> {
    if v.is_finite() && v > 0.0 {
        Ok(())
    } else {
        Err(invalid(format!(
            "{name} must be a finite number > 0, got {v}"
        )))
    }
}

/// Model parameters (from the `execution.slippage` config section).
#[derive(Debug, Clone, PartialEq)]
pub struct SlippageParams {
    pub max_slippage_bps: f64,
    pub impact_exponent: f64,
    pub prior_impact_coef: f64,
    pub prior_spread_bps: f64,
    pub prior_adv_shares: f64,
    pub prior_daily_vol_bps: f64,
    /// Forgetting rate of the impact regression per fill (memory of about 1 / rate fills).
    pub learning_rate: f64,
    /// Weight of the prior coefficient, in fills, when a symbol sees its first fill.
    pub prior_strength_fills: f64,
    /// EWMA weight of one quote bar in its time-of-day bucket.
    pub spread_learning_rate: f64,
    pub bucket_minutes: u32,
}

impl Default for SlippageParams {
    fn default() -> Self {
        Self {
            max_slippage_bps: 20.0,
            impact_exponent: 0.6,
            prior_impact_coef: 0.5,
            prior_spread_bps: 5.0,
            prior_adv_shares: 1_000_000.0,
            prior_daily_vol_bps: 200.0,
            learning_rate: 0.01,
            prior_strength_fills: 5.0,
            spread_learning_rate: 0.05,
            bucket_minutes: 30,
        }
    }
}

impl SlippageParams {
    pub fn validate(&self) -> Result<(), SlippageError> {
        check_positive("max_slippage_bps", self.max_slippage_bps)?;
        if !(self.impact_exponent > 0.0 && self.impact_exponent <= 1.0) {
            return Err(invalid(format!(
                "impact_exponent must be in (0, 1], got {}",
                self.impact_exponent
            )));
        }
        if !(self.prior_impact_coef.is_finite() && self.prior_impact_coef >= 0.0) {
            return Err(invalid(format!(
                "prior_impact_coef must be a finite number >= 0, got {}",
                self.prior_impact_coef
            )));
        }
        check_positive("prior_spread_bps", self.prior_spread_bps)?;
        check_positive("prior_adv_shares", self.prior_adv_shares)?;
        check_positive("prior_daily_vol_bps", self.prior_daily_vol_bps)?;
        check_positive("prior_strength_fills", self.prior_strength_fills)?;
        for (name, v) in [
            ("learning_rate", self.learning_rate),
            ("spread_learning_rate", self.spread_learning_rate),
        ] {
            if !(v > 0.0 && v <= 1.0) {
                return Err(invalid(format!("{name} must be in (0, 1], got {v}")));
            }
        }
        if self.bucket_minutes == 0 || self.bucket_minutes > SESSION_MINUTES {
            return Err(invalid(format!(
                "bucket_minutes must be in [1, {SESSION_MINUTES}], got {}",
                self.bucket_minutes
            )));
        }
        Ok(())
    }

    pub fn n_buckets(&self) -> usize {
        SESSION_MINUTES.div_ceil(self.bucket_minutes) as usize
    }
}

// ------------------------------------------------------------------------------- New York clock
/// Minutes since the 09:30 New York open on the New York calendar day of `ts_ns` (negative before it).
pub fn minutes_since_open(ts_ns: i64) -> i64 {
    ny_minute_of_day(ts_ns) as i64 - OPEN_MINUTE
}

/// x^e, with the exact square root for the square-root law.
#[inline]
fn qty_pow(q: f64, e: f64) -> f64 {
    if e == 0.5 {
        q.sqrt()
    } else {
        q.powf(e)
    }
}

fn bucket_of(minutes: i64, bucket_minutes: u32, n_buckets: usize) -> usize {
    (minutes.max(0) / i64::from(bucket_minutes)).min(n_buckets as i64 - 1) as usize
}

// -------------------------------------------------------------------------------- learned state
/// Robust online regression through the origin of excess cost on the participation term:
/// exponentially weighted least squares with Huber weights, the residual scale tracked as the running
/// median of absolute residuals (robust to any share of outliers below one half).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ImpactEstimator {
    pub coef: f64,
    sxx: f64,
    sxy: f64,
    scale_bps: f64,
    pub n_fills: u64,
}

impl ImpactEstimator {
    fn first(x: f64, y: f64, prior_coef: f64, prior_strength: f64) -> Self {
        let sxx = prior_strength * x * x;
        let sxy = prior_coef * sxx;
        let r = y - prior_coef * x;
        let mut est = Self {
            coef: prior_coef,
            sxx,
            sxy,
            scale_bps: r.abs().max(MIN_SCALE_BPS),
            n_fills: 0,
        };
        est.accumulate(x, y, 1.0, 1.0);
        est
    }

    fn update(&mut self, x: f64, y: f64, learning_rate: f64) {
        let r = y - self.coef * x;
        let threshold = HUBER_K * MEDIAN_ABS_TO_SIGMA * self.scale_bps;
        let w = if r.abs() <= threshold {
            1.0
        } else {
            threshold / r.abs()
        };
        // Stochastic approximation of the median of |r| on a log scale: steps up when |r| is above it,
        // down when below, so it settles where half the residuals are larger, whatever the outliers.
        let a = learning_rate.max((self.n_fills as f64 + 1.0).powf(-SCALE_STEP_DECAY));
        let step = if r.abs() > self.scale_bps { a } else { -a };
        self.scale_bps = (self.scale_bps * step.exp()).max(MIN_SCALE_BPS);
        self.accumulate(x, y, w, 1.0 - learning_rate);
    }

    fn accumulate(&mut self, x: f64, y: f64, w: f64, keep: f64) {
        self.sxx = keep * self.sxx + w * x * x;
        self.sxy = keep * self.sxy + w * x * y;
        self.coef = (self.sxy / self.sxx).max(0.0);
        self.n_fills += 1;
    }

    fn is_valid(&self) -> bool {
        [self.coef, self.sxx, self.sxy, self.scale_bps]
            .iter()
            .all(|v| v.is_finite())
            && self.coef >= 0.0
            && self.sxx > 0.0
            && self.scale_bps > 0.0
    }
}

/// Time-of-day spread profile: per bucket an EWMA of the spread in bps and the number of bars seen.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SpreadProfile {
    pub bps: Vec<f64>,
    pub bars: Vec<u64>,
}

impl SpreadProfile {
    fn new(n: usize) -> Self {
        Self {
            bps: vec![0.0; n],
            bars: vec![0; n],
        }
    }

    fn learn(&mut self, bucket: usize, spread_bps: f64, rate: f64) {
        // Plain mean until the EWMA weight takes over, so early estimates are not one noisy bar.
        let a = rate.max(1.0 / (self.bars[bucket] as f64 + 1.0));
        self.bps[bucket] += a * (spread_bps - self.bps[bucket]);
        self.bars[bucket] += 1;
    }

    fn get(&self, bucket: usize) -> Option<f64> {
        (self.bars[bucket] > 0).then(|| self.bps[bucket])
    }

    fn is_valid(&self, n: usize) -> bool {
        self.bps.len() == n
            && self.bars.len() == n
            && self
                .bps
                .iter()
                .zip(&self.bars)
                .all(|(v, &c)| v.is_finite() && (c == 0 || *v >= 0.0))
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SymbolState {
    pub adv_shares: Option<f64>,
    pub daily_vol_bps: Option<f64>,
    pub impact: Option<ImpactEstimator>,
    pub spread: SpreadProfile,
}

impl SymbolState {
    fn new(n: usize) -> Self {
        Self {
            adv_shares: None,
            daily_vol_bps: None,
            impact: None,
            spread: SpreadProfile::new(n),
        }
    }
}

#[derive(Serialize, Deserialize)]
struct StateFile {
    format_version: u32,
    impact_exponent: f64,
    bucket_minutes: u32,
    pooled_impact: Option<ImpactEstimator>,
    pooled_spread: SpreadProfile,
    symbols: std::collections::BTreeMap<String, SymbolState>,
}

/// Parameters of one symbol with the pooled fallbacks resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolved {
    pub impact_coef: f64,
    pub adv_shares: f64,
    pub daily_vol_bps: f64,
    pub spread_bps: Vec<f64>,
}

// ------------------------------------------------------------------------------------------ model
pub struct SlippageModel {
    params: SlippageParams,
    n_buckets: usize,
    /// Spread bucket of every minute of the New York day (clamped outside the session): a table lookup
    /// instead of a division by a run-time bucket width on the hot path.
    bucket_by_minute: Vec<u16>,
    index: FastMap<String, usize>,
    names: Vec<String>,
    states: Vec<SymbolState>,
    pooled_impact: Option<ImpactEstimator>,
    pooled_spread: SpreadProfile,
    /// Median ADV / daily vol over the symbols that have them (the prior when none has).
    pooled_adv: f64,
    pooled_vol: f64,
}

/// Resolved per-symbol inputs of one batch forecast.
struct BatchTable {
    coef_vol: Vec<f64>,
    adv: Vec<f64>,
    half: Vec<f64>,
}

/// Rows per worker thread below which a batch runs on the calling thread.
const BATCH_ROWS_PER_THREAD: usize = 65_536;

/// The learned inputs of a fill update: realised cost, the half-spread it is net of and the
/// participation term the coefficient multiplies.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FillObservation {
    pub cost_bps: f64,
    pub half_spread_bps: f64,
    pub participation_term_bps: f64,
}

impl SlippageModel {
    pub fn new(params: SlippageParams) -> Result<Self, SlippageError> {
        params.validate()?;
        let n = params.n_buckets();
        let bucket_by_minute = (0..1440)
            .map(|m| bucket_of(m - OPEN_MINUTE, params.bucket_minutes, n) as u16)
            .collect();
        Ok(Self {
            bucket_by_minute,
            pooled_adv: params.prior_adv_shares,
            pooled_vol: params.prior_daily_vol_bps,
            params,
            n_buckets: n,
            index: FastMap::default(),
            names: Vec::new(),
            states: Vec::new(),
            pooled_impact: None,
            pooled_spread: SpreadProfile::new(n),
        })
    }

    pub fn params(&self) -> &SlippageParams {
        &self.params
    }

    pub fn n_buckets(&self) -> usize {
        self.n_buckets
    }

    pub fn symbols(&self) -> &[String] {
        &self.names
    }

    pub fn symbol_index(&self, symbol: &str) -> Option<usize> {
        self.index.get(symbol).copied()
    }

    pub fn symbol_state(&self, symbol: &str) -> Option<&SymbolState> {
        self.symbol_index(symbol).map(|i| &self.states[i])
    }

    fn index_or_insert(&mut self, symbol: &str) -> Result<usize, SlippageError> {
        if let Some(&i) = self.index.get(symbol) {
            return Ok(i);
        }
        if symbol.is_empty() {
            return Err(invalid("symbol must be a non-empty string".into()));
        }
        let i = self.states.len();
        self.index.insert(symbol.to_owned(), i);
        self.names.push(symbol.to_owned());
        self.states.push(SymbolState::new(self.n_buckets));
        Ok(i)
    }

    pub fn bucket(&self, ts_ns: i64) -> usize {
        usize::from(self.bucket_by_minute[ny_minute_of_day(ts_ns)])
    }

    fn pooled_spread_at(&self, bucket: usize) -> f64 {
        self.pooled_spread
            .get(bucket)
            .unwrap_or(self.params.prior_spread_bps)
    }

    fn spread_at(&self, state: Option<&SymbolState>, bucket: usize) -> f64 {
        state
            .and_then(|s| s.spread.get(bucket))
            .unwrap_or_else(|| self.pooled_spread_at(bucket))
    }

    fn pooled_coef(&self) -> f64 {
        self.pooled_impact
            .as_ref()
            .map_or(self.params.prior_impact_coef, |e| e.coef)
    }

    /// Impact coefficient, ADV and daily volatility of a symbol (pooled values where it has none).
    fn impact_inputs(&self, state: Option<&SymbolState>) -> (f64, f64, f64) {
        match state {
            Some(s) => (
                s.impact
                    .as_ref()
                    .map_or_else(|| self.pooled_coef(), |e| e.coef),
                s.adv_shares.unwrap_or(self.pooled_adv),
                s.daily_vol_bps.unwrap_or(self.pooled_vol),
            ),
            None => (self.pooled_coef(), self.pooled_adv, self.pooled_vol),
        }
    }

    pub fn resolved(&self, symbol: &str) -> Resolved {
        let state = self.symbol_state(symbol);
        let (impact_coef, adv_shares, daily_vol_bps) = self.impact_inputs(state);
        Resolved {
            impact_coef,
            adv_shares,
            daily_vol_bps,
            spread_bps: (0..self.n_buckets)
                .map(|b| self.spread_at(state, b))
                .collect(),
        }
    }

    fn participation_term(&self, qty: f64, adv: f64, vol: f64) -> f64 {
        vol * (qty / adv).powf(self.params.impact_exponent)
    }

    /// coef * vol * (qty / ADV)^e, the one expression per-call and batch forecasts share so that they
    /// agree to the last bit.
    #[inline]
    fn impact(coef_vol: f64, qty: f64, adv: f64, e: f64) -> f64 {
        coef_vol * qty_pow(qty / adv, e)
    }

    /// Expected spread in bps of `symbol` at the time of day of `ts_ns`.
    pub fn forecast_spread(&self, symbol: &str, ts_ns: i64) -> f64 {
        self.spread_at(self.symbol_state(symbol), self.bucket(ts_ns))
    }

    /// Expected cost in bps of a marketable order of `qty` shares sent at `ts_ns` (capped).
    pub fn forecast(&self, symbol: &str, qty: f64, ts_ns: i64) -> Result<f64, SlippageError> {
        check_positive("qty", qty)?;
        let state = self.symbol_state(symbol);
        let (coef, adv, vol) = self.impact_inputs(state);
        let half = 0.5 * self.spread_at(state, self.bucket(ts_ns));
        let cost = half + Self::impact(coef * vol, qty, adv, self.params.impact_exponent);
        Ok(cost.min(self.params.max_slippage_bps))
    }

    /// Batch forecast. `names[codes[i]]` is the symbol of row i; `price` is checked like the per-call API.
    pub fn forecast_batch(
        &self,
        names: &[String],
        codes: &[u32],
        qty: &[f64],
        price: &[f64],
        ts_ns: &[i64],
        out: &mut [f64],
    ) -> Result<(), SlippageError> {
        let n = codes.len();
        for (name, len) in [
            ("qty", qty.len()),
            ("price", price.len()),
            ("ts", ts_ns.len()),
            ("out", out.len()),
        ] {
            if len != n {
                return Err(invalid(format!(
                    "{name} has {len} rows but symbols has {n}"
                )));
            }
        }
        // Per distinct symbol: coef * vol, ADV and the spread profile halved, resolved once.
        let mut table = BatchTable {
            coef_vol: Vec::with_capacity(names.len()),
            adv: Vec::with_capacity(names.len()),
            half: Vec::with_capacity(names.len() * self.n_buckets),
        };
        for name in names {
            let r = self.resolved(name);
            table.coef_vol.push(r.impact_coef * r.daily_vol_bps);
            table.adv.push(r.adv_shares);
            table.half.extend(r.spread_bps.iter().map(|s| 0.5 * s));
        }
        // Large batches are split over the available cores (rows are independent).
        let threads = std::thread::available_parallelism()
            .map_or(1, |p| p.get())
            .min(n / BATCH_ROWS_PER_THREAD)
            .max(1);
        if threads == 1 {
            return self.forecast_rows(&table, 0, codes, qty, price, ts_ns, out);
        }
        let chunk = n.div_ceil(threads);
        std::thread::scope(|scope| {
            let handles: Vec<_> = out
                .chunks_mut(chunk)
                .enumerate()
                .map(|(k, out)| {
                    let r = k * chunk..(k * chunk + out.len());
                    let (c, q, p, t) = (
                        &codes[r.clone()],
                        &qty[r.clone()],
                        &price[r.clone()],
                        &ts_ns[r],
                    );
                    let table = &table;
                    scope.spawn(move || self.forecast_rows(table, k * chunk, c, q, p, t, out))
                })
                .collect();
            // The first failing chunk in row order reports its first bad row.
            handles
                .into_iter()
                .try_for_each(|h| h.join().expect("forecast worker panicked"))
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn forecast_rows(
        &self,
        table: &BatchTable,
        first_row: usize,
        codes: &[u32],
        qty: &[f64],
        price: &[f64],
        ts_ns: &[i64],
        out: &mut [f64],
    ) -> Result<(), SlippageError> {
        let (e, nb, cap) = (
            self.params.impact_exponent,
            self.n_buckets,
            self.params.max_slippage_bps,
        );
        let n_names = table.adv.len();
        let mut clock = NyClock::default();
        for i in 0..codes.len() {
            let row = first_row + i;
            let c = codes[i] as usize;
            if c >= n_names {
                return Err(invalid(format!(
                    "symbol code {c} at row {row} is out of range ({n_names} symbols)"
                )));
            }
            let q = qty[i];
            if !(q.is_finite() && q > 0.0) {
                return Err(invalid(format!(
                    "qty must be a finite number > 0, got {q} at row {row}"
                )));
            }
            let p = price[i];
            if !(p.is_finite() && p > 0.0) {
                return Err(invalid(format!(
                    "price must be a finite number > 0, got {p} at row {row}"
                )));
            }
            let b = usize::from(self.bucket_by_minute[clock.minute_of_day(ts_ns[i])]);
            let impact = Self::impact(table.coef_vol[c], q, table.adv[c], e);
            out[i] = (table.half[c * nb + b] + impact).min(cap);
        }
        Ok(())
    }

    // ------------------------------------------------------------------------------- learning
    /// Learn from one fill: realised cost net of the half-spread updates the impact coefficient of the
    /// symbol and the pooled one.
    pub fn update_fill(
        &mut self,
        symbol: &str,
        side: Side,
        qty: f64,
        arrival_price: f64,
        fill_price: f64,
        ts_ns: i64,
    ) -> Result<FillObservation, SlippageError> {
        check_positive("qty", qty)?;
        check_positive("arrival_price", arrival_price)?;
        check_positive("fill_price", fill_price)?;
        let state = self.symbol_state(symbol);
        let (_, adv, vol) = self.impact_inputs(state);
        let half_spread_bps = 0.5 * self.spread_at(state, self.bucket(ts_ns));
        let cost_bps = side.sign() * (fill_price - arrival_price) / arrival_price * 1e4;
        let x = self.participation_term(qty, adv, vol);
        let y = cost_bps - half_spread_bps;
        // The regression squares x: keep it where x^2 is a normal, finite number.
        if !(x * x).is_normal() || !y.is_finite() {
            return Err(invalid(format!(
                "fill of {qty} {symbol} at {fill_price} (arrival {arrival_price}) is out of the usable \
                 range: participation term {x} bps, excess cost {y} bps"
            )));
        }
        let i = self.index_or_insert(symbol)?;
        let p = &self.params;
        let prior = self.pooled_coef();
        match &mut self.states[i].impact {
            Some(est) => est.update(x, y, p.learning_rate),
            slot @ None => {
                *slot = Some(ImpactEstimator::first(x, y, prior, p.prior_strength_fills))
            }
        }
        match &mut self.pooled_impact {
            Some(est) => est.update(x, y, p.learning_rate),
            slot @ None => {
                *slot = Some(ImpactEstimator::first(
                    x,
                    y,
                    p.prior_impact_coef,
                    p.prior_strength_fills,
                ))
            }
        }
        Ok(FillObservation {
            cost_bps,
            half_spread_bps,
            participation_term_bps: x,
        })
    }

    /// Learn one quote bar's mean spread into the symbol's and the pooled time-of-day profile.
    pub fn update_spread(
        &mut self,
        symbol: &str,
        ts_ns: i64,
        spread_bps: f64,
    ) -> Result<(), SlippageError> {
        if !(spread_bps.is_finite() && spread_bps >= 0.0) {
            return Err(invalid(format!(
                "spread_bps must be a finite number >= 0, got {spread_bps} for {symbol}"
            )));
        }
        let i = self.index_or_insert(symbol)?;
        let b = self.bucket(ts_ns);
        let rate = self.params.spread_learning_rate;
        self.states[i].spread.learn(b, spread_bps, rate);
        self.pooled_spread.learn(b, spread_bps, rate);
        Ok(())
    }

    /// Set ADV (shares) and/or daily volatility (bps) of a symbol, e.g. from its daily bars.
    pub fn set_daily_stats(
        &mut self,
        symbol: &str,
        adv_shares: Option<f64>,
        daily_vol_bps: Option<f64>,
    ) -> Result<(), SlippageError> {
        if let Some(a) = adv_shares {
            check_positive(&format!("adv_shares of {symbol}"), a)?;
        }
        if let Some(v) = daily_vol_bps {
            check_positive(&format!("daily_vol_bps of {symbol}"), v)?;
        }
        let i = self.index_or_insert(symbol)?;
        let s = &mut self.states[i];
        if adv_shares.is_some() {
            s.adv_shares = adv_shares;
        }
        if daily_vol_bps.is_some() {
            s.daily_vol_bps = daily_vol_bps;
        }
        self.refresh_pooled_daily();
        Ok(())
    }

    fn refresh_pooled_daily(&mut self) {
        fn median(mut v: Vec<f64>) -> Option<f64> {
            if v.is_empty() {
                return None;
            }
            v.sort_by(f64::total_cmp);
            let m = v.len() / 2;
            Some(if v.len() % 2 == 1 {
                v[m]
            } else {
                0.5 * (v[m - 1] + v[m])
            })
        }
        self.pooled_adv = median(self.states.iter().filter_map(|s| s.adv_shares).collect())
            .unwrap_or(self.params.prior_adv_shares);
        self.pooled_vol = median(self.states.iter().filter_map(|s| s.daily_vol_bps).collect())
            .unwrap_or(self.params.prior_daily_vol_bps);
    }

    // ---------------------------------------------------------------------------- persistence
    pub fn to_json(&self) -> String {
        let file = StateFile {
            format_version: FORMAT_VERSION,
            impact_exponent: self.params.impact_exponent,
            bucket_minutes: self.params.bucket_minutes,
            pooled_impact: self.pooled_impact.clone(),
            pooled_spread: self.pooled_spread.clone(),
            symbols: self
                .names
                .iter()
                .cloned()
                .zip(self.states.iter().cloned())
                .collect(),
        };
        serde_json::to_string(&file).expect("slippage state holds only finite numbers and strings")
    }

    /// Write the learned state to `path` atomically: a temporary file in the same directory is written,
    /// fsynced and renamed over `path`, then the directory is fsynced. On failure `path` is untouched and
    /// the temporary file is removed.
    pub fn save(&self, path: &Path) -> Result<(), SlippageError> {
        let io = |source| SlippageError::Io {
            path: path.to_path_buf(),
            source,
        };
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let name = path
            .file_name()
            .ok_or_else(|| invalid(format!("path {} has no file name", path.display())))?;
        let tmp = dir.join(format!(
            ".{}.tmp-{}",
            name.to_string_lossy(),
            std::process::id()
        ));
        let write = || -> std::io::Result<()> {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(self.to_json().as_bytes())?;
            f.sync_all()?;
            std::fs::rename(&tmp, path)?;
            // Persist the rename itself; not every platform can open a directory, which is fine.
            if let Ok(d) = std::fs::File::open(&dir) {
                d.sync_all().ok();
            }
            Ok(())
        };
        write().map_err(|e| {
            std::fs::remove_file(&tmp).ok();
            io(e)
        })
    }

    /// Replace the learned state by the one saved at `path`. The file must have been learned with the
    /// same impact exponent and bucket width (the coefficients and profile depend on them).
    pub fn load(&mut self, path: &Path) -> Result<(), SlippageError> {
        let text = std::fs::read_to_string(path).map_err(|source| SlippageError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        self.load_json(&text, path)
    }

    pub fn load_json(&mut self, text: &str, path: &Path) -> Result<(), SlippageError> {
        let corrupt = |detail: String| SlippageError::Corrupt {
            path: path.to_path_buf(),
            detail,
        };
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| corrupt(format!("not valid JSON ({e})")))?;
        let version = value
            .get("format_version")
            .and_then(serde_json::Value::as_u64)
            .ok_or_else(|| corrupt("no integer format_version".into()))?;
        // 0 was never written: a file claiming it is not ours, like one from a newer version.
        if version == 0 || version > u64::from(FORMAT_VERSION) {
            return Err(SlippageError::UnknownVersion {
                path: path.to_path_buf(),
                found: version,
            });
        }
        let file: StateFile =
            serde_json::from_value(value).map_err(|e| corrupt(format!("bad structure ({e})")))?;
        let p = &self.params;
        if file.impact_exponent != p.impact_exponent || file.bucket_minutes != p.bucket_minutes {
            return Err(SlippageError::Incompatible {
                path: path.to_path_buf(),
                detail: format!(
                    "saved with impact_exponent {} and bucket_minutes {}, this model uses {} and {}",
                    file.impact_exponent, file.bucket_minutes, p.impact_exponent, p.bucket_minutes
                ),
            });
        }
        let n = self.n_buckets;
        let positive = |v: Option<f64>| v.is_none_or(|x| x.is_finite() && x > 0.0);
        if !file.pooled_spread.is_valid(n)
            || !file
                .pooled_impact
                .as_ref()
                .is_none_or(ImpactEstimator::is_valid)
        {
            return Err(corrupt("invalid pooled state".into()));
        }
        for (name, s) in &file.symbols {
            if name.is_empty()
                || !s.spread.is_valid(n)
                || !s.impact.as_ref().is_none_or(ImpactEstimator::is_valid)
                || !positive(s.adv_shares)
                || !positive(s.daily_vol_bps)
            {
                return Err(corrupt(format!("invalid state for symbol {name:?}")));
            }
        }
        self.index.clear();
        self.names.clear();
        self.states.clear();
        for (name, s) in file.symbols {
            self.index.insert(name.clone(), self.names.len());
            self.names.push(name);
            self.states.push(s);
        }
        self.pooled_impact = file.pooled_impact;
        self.pooled_spread = file.pooled_spread;
        self.refresh_pooled_daily();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::civil::days_from_civil;

    const NS: i64 = 1_000_000_000;

    /// UTC epoch ns of a New York wall-clock time, given the offset in hours (-5 EST, -4 EDT).
    fn ny(y: i64, m: i64, d: i64, hh: i64, mm: i64, offset_h: i64) -> i64 {
        (days_from_civil(y, m, d) * 86_400 + (hh - offset_h) * 3600 + mm * 60) * NS
    }

    /// xorshift64* and Box-Muller: deterministic test noise without a dependency.
    struct Rng(u64);
    impl Rng {
        fn uniform(&mut self) -> f64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
        }
        fn normal(&mut self) -> f64 {
            let u = self.uniform().max(1e-300);
            (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * self.uniform()).cos()
        }
    }

    #[test]
    fn minutes_since_open_follow_dst() {
        assert_eq!(minutes_since_open(ny(2024, 1, 16, 9, 30, -5)), 0);
        assert_eq!(minutes_since_open(ny(2024, 7, 16, 9, 30, -4)), 0);
        assert_eq!(minutes_since_open(ny(2024, 7, 16, 15, 59, -4)), 389);
        // Friday before / Monday after the March 2024 switch.
        assert_eq!(minutes_since_open(ny(2024, 3, 8, 10, 0, -5)), 30);
        assert_eq!(minutes_since_open(ny(2024, 3, 11, 10, 0, -4)), 30);
        assert_eq!(minutes_since_open(ny(2024, 11, 4, 10, 0, -5)), 30);
        // Around the transition instants themselves (01:59 EST -> 03:00 EDT).
        let start = ny(2024, 3, 10, 2, 0, -5);
        assert_eq!(minutes_since_open(start - 60 * NS), 60 + 59 - 570);
        assert_eq!(minutes_since_open(start), 3 * 60 - 570);
        let mut clock = NyClock::default();
        for ts in [
            start - NS,
            start,
            ny(2024, 12, 31, 23, 0, -5),
            ny(2025, 1, 1, 0, 30, -5),
            0,
        ] {
            assert_eq!(clock.minute_of_day(ts), ny_minute_of_day(ts));
        }
    }

    fn model() -> SlippageModel {
        SlippageModel::new(SlippageParams::default()).unwrap()
    }

    #[test]
    fn hand_computed_forecast() {
        let mut m = model();
        m.set_daily_stats("AAA", Some(2_000_000.0), Some(150.0))
            .unwrap();
        let ts = ny(2024, 5, 1, 11, 0, -4);
        // Unlearned spread: the 5 bps prior; prior coefficient 0.5.
        let expected = 2.5 + 0.5 * 150.0 * (20_000.0f64 / 2_000_000.0).powf(0.6);
        assert!((m.forecast("AAA", 20_000.0, ts).unwrap() - expected).abs() < 1e-12);
        assert_eq!(m.forecast("AAA", 1e9, ts).unwrap(), 20.0);
        assert!(m.forecast("AAA", 0.0, ts).is_err());
        assert!(m.forecast("AAA", f64::NAN, ts).is_err());
    }

    #[test]
    fn unknown_symbols_use_pooled_values() {
        let mut m = model();
        m.set_daily_stats("A", Some(1e6), Some(100.0)).unwrap();
        m.set_daily_stats("B", Some(3e6), Some(300.0)).unwrap();
        let r = m.resolved("ZZZ");
        assert_eq!((r.adv_shares, r.daily_vol_bps), (2e6, 200.0));
        let ts = ny(2024, 5, 1, 9, 45, -4);
        m.update_spread("A", ts, 10.0).unwrap();
        assert_eq!(m.forecast_spread("ZZZ", ts), 10.0);
        assert_eq!(m.forecast_spread("B", ts), 10.0);
        assert_eq!(m.forecast_spread("ZZZ", ts + 3600 * NS), 5.0);
    }

    #[test]
    fn learned_coefficient_converges_despite_outliers() {
        let params = SlippageParams {
            learning_rate: 0.002,
            ..SlippageParams::default()
        };
        let mut m = SlippageModel::new(params).unwrap();
        let (adv, vol, true_coef) = (2e6, 150.0, 0.8);
        m.set_daily_stats("X", Some(adv), Some(vol)).unwrap();
        let ts = ny(2024, 5, 1, 12, 0, -4);
        let mut rng = Rng(42);
        for _ in 0..4000 {
            let qty = (10f64.powf(3.0 + 2.0 * rng.uniform())).round();
            let x = vol * (qty / adv).powf(0.6);
            let mut cost = 2.5 + true_coef * x + 2.0 * rng.normal();
            if rng.uniform() < 0.03 {
                cost += 50.0 + 150.0 * rng.uniform();
            }
            let side = if rng.uniform() < 0.5 {
                Side::Buy
            } else {
                Side::Sell
            };
            let arrival = 100.0;
            let fill = arrival * (1.0 + side.sign() * cost / 1e4);
            m.update_fill("X", side, qty, arrival, fill, ts).unwrap();
        }
        let coef = m.resolved("X").impact_coef;
        assert!((coef - true_coef).abs() < 0.05 * true_coef, "coef {coef}");
    }

    #[test]
    fn extreme_fills_are_rejected_not_learned() {
        let mut m = model();
        m.set_daily_stats("A", Some(1e6), Some(150.0)).unwrap();
        assert!(m
            .update_fill("A", Side::Buy, 1e-300, 10.0, 10.0, 0)
            .is_err());
        assert!(m.update_fill("A", Side::Buy, 1e300, 10.0, 10.0, 0).is_err());
        assert!(m.symbol_state("A").unwrap().impact.is_none());
        assert!(m
            .update_fill("NEW", Side::Buy, 1e300, 10.0, 10.0, 0)
            .is_err());
        assert!(m.symbol_state("NEW").is_none());
        m.update_fill("A", Side::Buy, 1e4, 10.0, 10.01, 0).unwrap();
        assert!(m.resolved("A").impact_coef.is_finite());
    }

    #[test]
    fn batch_equals_per_call() {
        let mut m = model();
        m.set_daily_stats("A", Some(5e5), Some(250.0)).unwrap();
        m.update_spread("A", ny(2024, 5, 1, 9, 31, -4), 12.0)
            .unwrap();
        let names = vec!["A".to_string(), "NEW".to_string()];
        let codes = [0u32, 1, 0, 1];
        let qty = [100.0, 5e4, 3e5, 1.0];
        let ts = [
            ny(2024, 5, 1, 9, 31, -4),
            ny(2024, 1, 2, 15, 0, -5),
            ny(2024, 5, 1, 20, 0, -4),
            0,
        ];
        let mut out = [0.0; 4];
        m.forecast_batch(&names, &codes, &qty, &[10.0; 4], &ts, &mut out)
            .unwrap();
        for i in 0..4 {
            let one = m
                .forecast(&names[codes[i] as usize], qty[i], ts[i])
                .unwrap();
            assert!((out[i] - one).abs() < 1e-12);
        }
        let bad = m.forecast_batch(&names, &codes, &qty, &[10.0, -1.0, 1.0, 1.0], &ts, &mut out);
        assert!(bad.unwrap_err().to_string().contains("price"));
    }

    #[test]
    fn threaded_batch_equals_per_call_and_names_the_bad_row() {
        let mut m = model();
        m.set_daily_stats("A", Some(5e5), Some(250.0)).unwrap();
        let names = vec!["A".to_string(), "B".to_string()];
        let n = 4 * BATCH_ROWS_PER_THREAD + 7;
        let mut rng = Rng(7);
        let codes: Vec<u32> = (0..n).map(|i| (i % 2) as u32).collect();
        let qty: Vec<f64> = (0..n).map(|_| 1.0 + 1e5 * rng.uniform()).collect();
        let ts: Vec<i64> = (0..n)
            .map(|_| ny(2024, 3, 8, 9, 0, -5) + (4e5 * rng.uniform()) as i64 * NS)
            .collect();
        let mut price = vec![10.0; n];
        let mut out = vec![0.0; n];
        m.forecast_batch(&names, &codes, &qty, &price, &ts, &mut out)
            .unwrap();
        for i in (0..n).step_by(997) {
            let one = m
                .forecast(&names[codes[i] as usize], qty[i], ts[i])
                .unwrap();
            assert_eq!(out[i], one);
        }
        price[n - 3] = f64::NAN;
        let err = m
            .forecast_batch(&names, &codes, &qty, &price, &ts, &mut out)
            .unwrap_err();
        assert!(err.to_string().contains(&format!("row {}", n - 3)), "{err}");
    }

    #[test]
    fn json_round_trip_and_errors() {
        let mut m = model();
        m.set_daily_stats("A", Some(5e5), Some(250.0)).unwrap();
        m.update_fill("A", Side::Buy, 1000.0, 10.0, 10.01, 0)
            .unwrap();
        m.update_spread("A", ny(2024, 5, 1, 9, 31, -4), 12.0)
            .unwrap();
        let text = m.to_json();
        let mut back = model();
        let p = Path::new("state.json");
        back.load_json(&text, p).unwrap();
        assert_eq!(back.resolved("A"), m.resolved("A"));
        assert_eq!(back.to_json(), text);
        let err = back.load_json(&text[..text.len() / 2], p).unwrap_err();
        assert!(matches!(err, SlippageError::Corrupt { .. }), "{err}");
        let future = text.replace("\"format_version\":1", "\"format_version\":9");
        let err = back.load_json(&future, p).unwrap_err();
        assert!(matches!(
            err,
            SlippageError::UnknownVersion { found: 9, .. }
        ));
        assert!(err.to_string().contains("state.json"));
        let never = text.replace("\"format_version\":1", "\"format_version\":0");
        let err = back.load_json(&never, p).unwrap_err();
        assert!(
            matches!(err, SlippageError::UnknownVersion { found: 0, .. }),
            "{err}"
        );
        let mut other = SlippageModel::new(SlippageParams {
            impact_exponent: 0.5,
            ..SlippageParams::default()
        })
        .unwrap();
        assert!(matches!(
            other.load_json(&text, p),
            Err(SlippageError::Incompatible { .. })
        ));
    }

    #[test]
    fn bad_params_are_named() {
        let p = SlippageParams {
            impact_exponent: 1.5,
            ..SlippageParams::default()
        };
        let err = SlippageModel::new(p).err().unwrap().to_string();
        assert!(err.contains("impact_exponent"), "{err}");
    }
}
