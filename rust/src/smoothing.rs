//! Seeded exponential smoothers of `hybridtrader.ml.features` (Wilder's averages and EMAs) over runs of
//! rows (one run per symbol; each run starts afresh).
//!
//! Per run, the smoothed input is the seeded column `features.wilder` / `features.ema` define: missing
//! before the run's seed row, the run's seed (a simple mean the caller computes) on it, the run's own
//! values after it. The recursion is Polars' `ewm_mean(alpha, adjust=False)` (nulls not ignored,
//! min_periods 1) operation for operation, so the values are bit-identical to that Polars expression:
//! the first present value starts the mean with weight 1; every later row multiplies the weight by
//! (1 - alpha); a present value x then moves the mean by (x - mean) * alpha / (weight + alpha) and resets
//! the weight to 1. A row is present in the output exactly when its input is.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SmoothError {
    /// Columns of different lengths.
    Lengths {
        what: &'static str,
        got: usize,
        want: usize,
    },
    /// Run bounds that do not start at 0, end at the row count and ascend.
    Runs,
}

impl fmt::Display for SmoothError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SmoothError::Lengths { what, got, want } => {
                write!(f, "smoothing: {what} has {got} values, want {want}")
            }
            SmoothError::Runs => write!(
                f,
                "smoothing: run bounds must ascend from 0 to the number of rows"
            ),
        }
    }
}

impl std::error::Error for SmoothError {}

/// A smoothed column: values (NaN where missing) and presence.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Smoothed {
    pub value: Vec<f64>,
    pub present: Vec<bool>,
}

/// The state of Polars' adjust=False EWM mean.
struct Ewm {
    alpha: f64,
    mean: f64,
    weight: f64,
    started: bool,
}

impl Ewm {
    fn new(alpha: f64) -> Self {
        Ewm {
            alpha,
            mean: 0.0,
            weight: 0.0,
            started: false,
        }
    }

    /// Feeds one row; the mean when the row is present.
    fn step(&mut self, x: Option<f64>) -> Option<f64> {
        if !self.started {
            if let Some(v) = x {
                self.started = true;
                self.mean = v;
                self.weight = 1.0;
            }
            return x;
        }
        self.weight *= 1.0 - self.alpha;
        let v = x?;
        let total = self.weight + self.alpha;
        self.mean = self.mean + (v - self.mean) * (self.alpha / total);
        self.weight = 1.0;
        Some(self.mean)
    }
}

fn check(what: &'static str, got: usize, want: usize) -> Result<(), SmoothError> {
    if got == want {
        Ok(())
    } else {
        Err(SmoothError::Lengths { what, got, want })
    }
}

/// The seeded smoother of `value` (`present` marks its non-missing rows) over runs `bounds` (run r is
/// rows bounds[r]..bounds[r + 1]): run r's row `seed_row` (counted from the run's start) takes
/// `seed[r]` (missing when `seed_present[r]` is false), its earlier rows are missing, its later rows are
/// its own values.
pub fn seeded_ewm(
    value: &[f64],
    present: &[bool],
    bounds: &[usize],
    seed: &[f64],
    seed_present: &[bool],
    seed_row: usize,
    alpha: f64,
) -> Result<Smoothed, SmoothError> {
    let n = value.len();
    check("present", present.len(), n)?;
    let runs = bounds.len().saturating_sub(1);
    check("seed", seed.len(), runs)?;
    check("seed_present", seed_present.len(), runs)?;
    let ascending = bounds.windows(2).all(|w| w[0] <= w[1]);
    if bounds.first() != Some(&0) || bounds.last() != Some(&n) || !ascending {
        return Err(SmoothError::Runs);
    }
    let mut out = Smoothed {
        value: vec![f64::NAN; n],
        present: vec![false; n],
    };
    for r in 0..runs {
        let (start, end) = (bounds[r], bounds[r + 1]);
        let mut ewm = Ewm::new(alpha);
        for i in start..end {
            let x = match (i - start).cmp(&seed_row) {
                std::cmp::Ordering::Less => None,
                std::cmp::Ordering::Equal => seed_present[r].then_some(seed[r]),
                std::cmp::Ordering::Greater => present[i].then_some(value[i]),
            };
            if let Some(v) = ewm.step(x) {
                out.value[i] = v;
                out.present[i] = true;
            }
        }
    }
    Ok(out)
}

/// EMA with `alpha` down each column of the row-major `rows x cols` grid `x`, continuing from `last` (one
/// value per column): y_t = alpha x_t + (1 - alpha) y_{t-1}, y_{-1} = last. Operation for operation what
/// `scipy.signal.lfilter([alpha], [1, alpha - 1], x, axis=0, zi=(1 - alpha) * last)` computes (its
/// transposed direct form: the state z = 0 x_t - (alpha - 1) y_t carried to y_{t+1} = z + alpha x_{t+1}),
/// so the values are bit-identical to it.
pub fn ema_columns(
    x: &[f64],
    cols: usize,
    alpha: f64,
    last: &[f64],
) -> Result<Vec<f64>, SmoothError> {
    check("last", last.len(), cols)?;
    if cols == 0 {
        return Ok(Vec::new()); // no column: no rows either
    }
    check("grid", x.len(), x.len().div_ceil(cols) * cols)?; // whole rows
    let a1 = alpha - 1.0;
    let mut z: Vec<f64> = last.iter().map(|&v| (1.0 - alpha) * v).collect();
    let mut y = vec![0.0; x.len()];
    for (row_x, row_y) in x.chunks_exact(cols).zip(y.chunks_exact_mut(cols)) {
        for ((&xt, yt), zc) in row_x.iter().zip(row_y.iter_mut()).zip(z.iter_mut()) {
            *yt = *zc + alpha * xt;
            *zc = xt * 0.0 - *yt * a1;
        }
    }
    Ok(y)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ema_columns_follow_the_recursion_down_each_column() {
        // alpha 0.5 from last (2, 10): column 0 takes 4 then 8, column 1 takes 0 then 6
        let y = ema_columns(&[4.0, 0.0, 8.0, 6.0], 2, 0.5, &[2.0, 10.0]).unwrap();
        assert_eq!(y, vec![3.0, 5.0, 5.5, 5.5]);
        assert!(ema_columns(&[1.0, 2.0, 3.0], 2, 0.5, &[0.0, 0.0]).is_err());
        assert!(ema_columns(&[1.0, 2.0], 2, 0.5, &[0.0]).is_err());
        assert_eq!(ema_columns(&[], 0, 0.5, &[]).unwrap(), Vec::<f64>::new());
    }

    fn run(
        value: &[f64],
        present: &[bool],
        bounds: &[usize],
        seed: &[f64],
        row: usize,
    ) -> Smoothed {
        let seed_present = vec![true; seed.len()];
        seeded_ewm(value, present, bounds, seed, &seed_present, row, 0.5).unwrap()
    }

    #[test]
    fn seed_then_recursion() {
        // seed 2 on row 1, then x = 4: 2 + (4 - 2) * 0.5 / (0.5 + 0.5) = 3; then x = 1: 3 - 2 * 0.5 = 2
        let out = run(&[9.0, 9.0, 4.0, 1.0], &[true; 4], &[0, 4], &[2.0], 1);
        assert_eq!(out.present, vec![false, true, true, true]);
        assert_eq!(&out.value[1..], &[2.0, 3.0, 2.0]);
    }

    #[test]
    fn missing_row_decays_the_weight() {
        // after the seed 2: a missing row (weight 0.5), then x = 4: weight 0.25, 2 + 2 * 0.5 / 0.75
        let out = run(&[0.0, 0.0, 4.0], &[true, false, true], &[0, 3], &[2.0], 0);
        assert_eq!(out.present, vec![true, false, true]);
        assert_eq!(out.value[2], 2.0 + 2.0 * (0.5 / 0.75));
    }

    #[test]
    fn runs_restart_and_missing_seed_starts_later() {
        let value = [1.0, 5.0, 7.0, 1.0, 3.0];
        let out = seeded_ewm(
            &value,
            &[true; 5],
            &[0, 3, 5],
            &[1.0, 0.0],
            &[true, false],
            0,
            0.5,
        )
        .unwrap();
        assert_eq!(&out.value[..3], &[1.0, 3.0, 5.0]);
        // run 2: no seed, starts at its next present value (3)
        assert_eq!(out.present[3..], [false, true]);
        assert_eq!(out.value[4], 3.0);
    }

    #[test]
    fn short_run_has_no_seed_row() {
        let out = run(&[1.0, 2.0], &[true; 2], &[0, 2], &[5.0], 3);
        assert_eq!(out.present, vec![false, false]);
    }

    #[test]
    fn bad_shapes_are_errors() {
        let err = seeded_ewm(&[1.0], &[true], &[0, 2], &[0.0], &[true], 0, 0.5);
        assert_eq!(err, Err(SmoothError::Runs));
        let err = seeded_ewm(&[1.0], &[true, true], &[0, 1], &[0.0], &[true], 0, 0.5);
        assert!(matches!(
            err,
            Err(SmoothError::Lengths {
                what: "present",
                ..
            })
        ));
    }
}
