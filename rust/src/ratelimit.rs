//! Exact sliding-window rate limiting over several rates at once, per key, with weights.
//!
//! A rate is "at most `limit` units of weight in any window of `window_ns` nanoseconds". A request of
//! weight `w` at time `now` is admitted iff, for every rate, the weight admitted in `(now - window, now]`
//! plus `w` stays within the limit — so every half-open interval of length `window` holds at most `limit`,
//! and a request is refused only when admitting it would break that.
//!
//! Per key the admissions live in one ring buffer of `(timestamp, weight)` shared by all rates; each rate
//! keeps the absolute index of its oldest in-window entry and the running sum of weight from there on.
//! Expired entries are evicted lazily on the next call, so a decision is amortised O(number of rates).
//! Time is passed in explicitly (nanoseconds on a monotonic axis) so the logic is deterministic under test;
//! a time earlier than the key's last one is treated as that last time (the clock never runs backwards).

use crate::common::FastMap;
use std::collections::VecDeque;
use std::fmt;

/// The key used when the caller does not name one; it is stored outside the map (no hashing).
pub const DEFAULT_KEY: &str = "default";

const NS_PER_SEC: f64 = 1e9;

/// At most `limit` units of weight in any window of `window_ns` nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub limit: u64,
    pub window_ns: u64,
}

impl Rate {
    /// A rate from a limit and a window in seconds; `index` names the rate in error messages.
    pub fn from_secs(index: usize, limit: i64, window_s: f64) -> Result<Rate, LimitError> {
        if limit <= 0 {
            return Err(LimitError::BadLimit { index, limit });
        }
        let window_ns = window_s * NS_PER_SEC;
        // Windows must be positive and representable in u64 nanoseconds (about 584 years).
        if !window_ns.is_finite() || window_ns.round() < 1.0 || window_ns >= u64::MAX as f64 {
            return Err(LimitError::BadWindow { index, window_s });
        }
        Ok(Rate {
            limit: limit as u64,
            window_ns: window_ns.round() as u64,
        })
    }

    pub fn window_secs(&self) -> f64 {
        self.window_ns as f64 / NS_PER_SEC
    }
}

/// Bad configuration or a request that can never be admitted.
#[derive(Debug, Clone, PartialEq)]
pub enum LimitError {
    NoRates,
    BadLimit {
        index: usize,
        limit: i64,
    },
    BadWindow {
        index: usize,
        window_s: f64,
    },
    BadWeight {
        weight: i64,
    },
    WeightAboveLimit {
        weight: i64,
        index: usize,
        rate: Rate,
    },
}

impl fmt::Display for LimitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LimitError::NoRates => write!(f, "rates must hold at least one (limit, window_seconds) pair"),
            LimitError::BadLimit { index, limit } => {
                write!(f, "rates[{index}]: limit must be a positive integer, got {limit}")
            }
            LimitError::BadWindow { index, window_s } => write!(
                f,
                "rates[{index}]: window must be a positive, finite number of seconds, got {window_s}"
            ),
            LimitError::BadWeight { weight } => write!(f, "weight must be >= 1, got {weight}"),
            LimitError::WeightAboveLimit { weight, index, rate } => write!(
                f,
                "weight {weight} exceeds the limit of rates[{index}] ({} per {} s): it can never be admitted",
                rate.limit,
                rate.window_secs()
            ),
        }
    }
}

impl std::error::Error for LimitError {}

/// One rate's view of a key's log: where its window starts and how much weight lies in it.
#[derive(Debug, Clone, Copy, Default)]
struct Window {
    start: u64,
    sum: u64,
}

/// The admissions of one key and its counters.
#[derive(Debug, Clone)]
pub struct KeyState {
    log: VecDeque<(u64, u64)>,
    /// Absolute index of `log[0]`.
    base: u64,
    windows: Vec<Window>,
    last_ns: u64,
    pub admitted: u64,
    pub rejected: u64,
    pub admitted_weight: u64,
}

impl KeyState {
    fn new(n_rates: usize) -> Self {
        KeyState {
            log: VecDeque::new(),
            base: 0,
            windows: vec![Window::default(); n_rates],
            last_ns: 0,
            admitted: 0,
            rejected: 0,
            admitted_weight: 0,
        }
    }

    /// Clamp `now` to the key's clock and drop the entries that left each window.
    #[inline]
    fn advance(&mut self, rates: &[Rate], now: u64) -> u64 {
        let now = now.max(self.last_ns);
        self.last_ns = now;
        let end = self.base + self.log.len() as u64;
        let mut oldest = end;
        for (w, r) in self.windows.iter_mut().zip(rates) {
            while w.start < end {
                let (ts, weight) = self.log[(w.start - self.base) as usize];
                if ts.saturating_add(r.window_ns) > now {
                    break;
                }
                w.sum -= weight;
                w.start += 1;
            }
            oldest = oldest.min(w.start);
        }
        while self.base < oldest {
            self.log.pop_front();
            self.base += 1;
        }
        now
    }

    #[inline]
    fn fits(&self, rates: &[Rate], weight: u64) -> bool {
        self.windows
            .iter()
            .zip(rates)
            .all(|(w, r)| w.sum + weight <= r.limit)
    }

    #[inline]
    fn admit(&mut self, now: u64, weight: u64) {
        self.log.push_back((now, weight));
        for w in &mut self.windows {
            w.sum += weight;
        }
        self.admitted += 1;
        self.admitted_weight += weight;
    }

    /// Decide at `now` (after `advance`): admit and record, or count a refusal.
    #[inline]
    fn decide(&mut self, rates: &[Rate], now: u64, weight: u64) -> bool {
        if self.fits(rates, weight) {
            self.admit(now, weight);
            true
        } else {
            self.rejected += 1;
            false
        }
    }

    /// Nanoseconds from `now` (after `advance`) until `weight` fits in every window, if nothing else is
    /// admitted meanwhile: per rate, the moment enough of the oldest entries have expired.
    fn wait_ns(&self, rates: &[Rate], now: u64, weight: u64) -> u64 {
        let mut wait = 0;
        for (w, r) in self.windows.iter().zip(rates) {
            let need = w.sum + weight;
            if need <= r.limit {
                continue;
            }
            let excess = need - r.limit;
            let mut freed = 0;
            let mut idx = (w.start - self.base) as usize;
            loop {
                // weight <= limit, so the excess is always covered by entries still in the window.
                let (ts, entry_weight) = self.log[idx];
                freed += entry_weight;
                if freed >= excess {
                    wait = wait.max(ts.saturating_add(r.window_ns) - now);
                    break;
                }
                idx += 1;
            }
        }
        wait
    }

    /// Weight currently inside each rate's window (as of the last call).
    pub fn in_window(&self) -> Vec<u64> {
        self.windows.iter().map(|w| w.sum).collect()
    }
}

/// Named keys: name -> slot, states in a Vec so a lookup is one hash probe (and only a new key allocates).
#[derive(Debug, Clone, Default)]
struct Keys {
    index: FastMap<Box<str>, usize>,
    states: Vec<KeyState>,
}

/// The state of `key`, created on first use.
#[inline]
fn entry<'a>(
    default: &'a mut KeyState,
    keys: &'a mut Keys,
    n_rates: usize,
    key: &str,
) -> &'a mut KeyState {
    if key == DEFAULT_KEY {
        return default;
    }
    let slot = match keys.index.get(key) {
        Some(&slot) => slot,
        None => {
            keys.states.push(KeyState::new(n_rates));
            keys.index.insert(key.into(), keys.states.len() - 1);
            keys.states.len() - 1
        }
    };
    &mut keys.states[slot]
}

/// Sliding-window limiter over one or more rates, with independent state per key.
#[derive(Debug, Clone)]
pub struct SlidingWindowLimiter {
    rates: Box<[Rate]>,
    /// Index of the rate with the smallest limit (the largest admissible weight).
    tightest: usize,
    default: KeyState,
    keys: Keys,
}

impl SlidingWindowLimiter {
    pub fn new(rates: Vec<Rate>) -> Result<Self, LimitError> {
        if rates.is_empty() {
            return Err(LimitError::NoRates);
        }
        let tightest = (0..rates.len())
            .min_by_key(|&i| rates[i].limit)
            .unwrap_or(0);
        let n = rates.len();
        Ok(SlidingWindowLimiter {
            rates: rates.into_boxed_slice(),
            tightest,
            default: KeyState::new(n),
            keys: Keys::default(),
        })
    }

    /// Build from `(limit, window_seconds)` pairs, validating each.
    pub fn from_secs(pairs: &[(i64, f64)]) -> Result<Self, LimitError> {
        let rates = pairs
            .iter()
            .enumerate()
            .map(|(i, &(limit, window))| Rate::from_secs(i, limit, window))
            .collect::<Result<Vec<_>, _>>()?;
        Self::new(rates)
    }

    pub fn rates(&self) -> &[Rate] {
        &self.rates
    }

    /// Check a weight: at least 1 and no more than the smallest limit.
    #[inline]
    pub fn check_weight(&self, weight: i64) -> Result<u64, LimitError> {
        if weight < 1 {
            return Err(LimitError::BadWeight { weight });
        }
        let rate = self.rates[self.tightest];
        if weight as u64 > rate.limit {
            return Err(LimitError::WeightAboveLimit {
                weight,
                index: self.tightest,
                rate,
            });
        }
        Ok(weight as u64)
    }

    /// Admit `weight` for `key` at `now` if it fits in every window; returns the decision and the time it
    /// was taken at (after clamping to the key's clock).
    #[inline]
    pub fn try_acquire_stamped(
        &mut self,
        key: &str,
        weight: i64,
        now: u64,
    ) -> Result<(bool, u64), LimitError> {
        let weight = self.check_weight(weight)?;
        let rates = &self.rates;
        let state = entry(&mut self.default, &mut self.keys, rates.len(), key);
        let now = state.advance(rates, now);
        Ok((state.decide(rates, now, weight), now))
    }

    #[inline]
    pub fn try_acquire(&mut self, key: &str, weight: i64, now: u64) -> Result<bool, LimitError> {
        self.try_acquire_stamped(key, weight, now).map(|(ok, _)| ok)
    }

    /// Admit now (returns 0), or refuse and return the nanoseconds until `weight` would fit.
    pub fn poll(&mut self, key: &str, weight: i64, now: u64) -> Result<u64, LimitError> {
        let weight = self.check_weight(weight)?;
        let rates = &self.rates;
        let state = entry(&mut self.default, &mut self.keys, rates.len(), key);
        let now = state.advance(rates, now);
        if state.decide(rates, now, weight) {
            Ok(0)
        } else {
            Ok(state.wait_ns(rates, now, weight).max(1))
        }
    }

    /// Nanoseconds from `now` until `weight` would be admitted for `key` (0: admissible now).
    pub fn wait_ns(&mut self, key: &str, weight: i64, now: u64) -> Result<u64, LimitError> {
        let weight = self.check_weight(weight)?;
        let rates = &self.rates;
        let state = if key == DEFAULT_KEY {
            &mut self.default
        } else {
            match self.keys.index.get(key) {
                Some(&slot) => &mut self.keys.states[slot],
                None => return Ok(0),
            }
        };
        let now = state.advance(rates, now);
        Ok(state.wait_ns(rates, now, weight))
    }

    /// Every key that has seen a request, with its state brought up to `now`.
    pub fn keys_at(&mut self, now: u64) -> Vec<(&str, &KeyState)> {
        let rates = &self.rates;
        self.default.advance(rates, now);
        for s in &mut self.keys.states {
            s.advance(rates, now);
        }
        let mut out = Vec::with_capacity(self.keys.states.len() + 1);
        if self.default.admitted + self.default.rejected > 0 {
            out.push((DEFAULT_KEY, &self.default));
        }
        for (k, &slot) in &self.keys.index {
            out.push((&**k, &self.keys.states[slot]));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    fn lim(pairs: &[(i64, f64)]) -> SlidingWindowLimiter {
        SlidingWindowLimiter::from_secs(pairs).unwrap()
    }

    /// Brute-force reference: the full admission log, windows recounted from scratch.
    struct Reference {
        rates: Vec<Rate>,
        log: Vec<(u64, u64)>,
        last: u64,
    }

    impl Reference {
        fn in_window(&self, r: &Rate, now: u64) -> u64 {
            self.log
                .iter()
                .filter(|(t, _)| t + r.window_ns > now)
                .map(|(_, w)| w)
                .sum()
        }
        fn try_acquire(&mut self, weight: u64, now: u64) -> bool {
            let now = now.max(self.last);
            self.last = now;
            let ok = self
                .rates
                .iter()
                .all(|r| self.in_window(r, now) + weight <= r.limit);
            if ok {
                self.log.push((now, weight));
            }
            ok
        }
        fn wait(&self, weight: u64, now: u64) -> u64 {
            // Smallest d such that every window at now + d has room; expiry times are the only candidates.
            let now = now.max(self.last);
            let fits = |t: u64| {
                self.rates
                    .iter()
                    .all(|r| self.in_window(r, t) + weight <= r.limit)
            };
            if fits(now) {
                return 0;
            }
            let mut candidates: Vec<u64> = self
                .log
                .iter()
                .flat_map(|(t, _)| self.rates.iter().map(move |r| t + r.window_ns))
                .filter(|&e| e > now)
                .collect();
            candidates.sort_unstable();
            candidates.into_iter().find(|&e| fits(e)).unwrap() - now
        }
    }

    /// Tiny deterministic PRNG (xorshift) so the randomised tests need no crate.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    #[test]
    fn admits_up_to_the_limit_then_refuses_until_the_window_slides() {
        let mut l = lim(&[(3, 1.0)]);
        for t in [0, 10, 20] {
            assert!(l.try_acquire("default", 1, t).unwrap());
        }
        assert!(!l.try_acquire("default", 1, 30).unwrap());
        // The first admission (t=0) leaves the window at exactly t = 1 s.
        assert_eq!(l.wait_ns("default", 1, 30).unwrap(), S - 30);
        assert!(!l.try_acquire("default", 1, S - 1).unwrap());
        assert!(l.try_acquire("default", 1, S).unwrap());
        assert!(!l.try_acquire("default", 1, S + 9).unwrap());
        assert!(l.try_acquire("default", 1, S + 10).unwrap());
    }

    #[test]
    fn weights_count_and_wait_covers_the_excess() {
        let mut l = lim(&[(10, 1.0)]);
        assert!(l.try_acquire("k", 4, 0).unwrap());
        assert!(l.try_acquire("k", 4, 100).unwrap());
        assert!(!l.try_acquire("k", 3, 200).unwrap());
        assert!(l.try_acquire("k", 2, 200).unwrap());
        // Window holds 10; weight 5 needs 5 freed: entries 4 (t=0) and 4 (t=100) -> wait until 100 + 1 s.
        assert_eq!(l.wait_ns("k", 5, 300).unwrap(), S + 100 - 300);
        assert_eq!(l.wait_ns("k", 4, 300).unwrap(), S - 300);
    }

    #[test]
    fn every_rate_must_have_room() {
        let mut l = lim(&[(5, 60.0), (2, 1.0)]);
        assert!(l.try_acquire("default", 1, 0).unwrap());
        assert!(l.try_acquire("default", 1, 1).unwrap());
        assert!(!l.try_acquire("default", 1, 2).unwrap()); // per-second rate full
        assert_eq!(l.wait_ns("default", 1, 2).unwrap(), S - 2);
        for t in [S + 1, S + 2, 2 * S + 5] {
            assert!(l.try_acquire("default", 1, t).unwrap());
        }
        assert!(!l.try_acquire("default", 1, 3 * S).unwrap()); // per-minute rate full (5)
        assert_eq!(l.wait_ns("default", 1, 3 * S).unwrap(), 60 * S - 3 * S);
    }

    #[test]
    fn keys_are_independent_and_unknown_keys_wait_zero() {
        let mut l = lim(&[(1, 1.0)]);
        assert!(l.try_acquire("a", 1, 0).unwrap());
        assert!(!l.try_acquire("a", 1, 1).unwrap());
        assert!(l.try_acquire("b", 1, 1).unwrap());
        assert!(l.try_acquire("default", 1, 1).unwrap());
        assert_eq!(l.wait_ns("never-seen", 1, 1).unwrap(), 0);
        let keys: Vec<(String, u64, u64)> = l
            .keys_at(2)
            .into_iter()
            .map(|(k, s)| (k.to_string(), s.admitted, s.rejected))
            .collect();
        assert_eq!(keys.len(), 3);
        assert!(keys.contains(&("a".to_string(), 1, 1)));
        assert!(keys.contains(&("b".to_string(), 1, 0)));
        assert!(keys.contains(&("default".to_string(), 1, 0)));
    }

    #[test]
    fn clock_never_runs_backwards() {
        let mut l = lim(&[(1, 1.0)]);
        assert_eq!(
            l.try_acquire_stamped("default", 1, 5 * S).unwrap(),
            (true, 5 * S)
        );
        // An earlier time is read as the last one: still inside the window.
        assert_eq!(
            l.try_acquire_stamped("default", 1, 0).unwrap(),
            (false, 5 * S)
        );
    }

    #[test]
    fn poll_admits_or_returns_a_positive_wait() {
        let mut l = lim(&[(1, 2.0)]);
        assert_eq!(l.poll("default", 1, 0).unwrap(), 0);
        assert_eq!(l.poll("default", 1, S).unwrap(), S);
        assert_eq!(l.poll("default", 1, 2 * S).unwrap(), 0);
    }

    #[test]
    fn bad_configuration_is_named() {
        let e = SlidingWindowLimiter::from_secs(&[(200, 60.0), (0, 1.0)]).unwrap_err();
        assert_eq!(e, LimitError::BadLimit { index: 1, limit: 0 });
        assert!(e.to_string().contains("rates[1]: limit"));
        let e = SlidingWindowLimiter::from_secs(&[(5, -1.0)]).unwrap_err();
        assert!(e.to_string().contains("rates[0]: window"), "{e}");
        assert!(SlidingWindowLimiter::from_secs(&[(5, f64::NAN)]).is_err());
        assert!(SlidingWindowLimiter::from_secs(&[(5, f64::INFINITY)]).is_err());
        assert!(SlidingWindowLimiter::from_secs(&[(5, 1e-12)]).is_err());
        assert_eq!(
            SlidingWindowLimiter::from_secs(&[]).unwrap_err(),
            LimitError::NoRates
        );
        let mut l = lim(&[(200, 60.0), (10, 1.0)]);
        let e = l.try_acquire("default", 11, 0).unwrap_err();
        assert!(
            e.to_string()
                .contains("weight 11 exceeds the limit of rates[1] (10 per 1 s)"),
            "{e}"
        );
        assert_eq!(
            l.try_acquire("default", 0, 0).unwrap_err(),
            LimitError::BadWeight { weight: 0 }
        );
        assert!(l.wait_ns("default", -3, 0).is_err());
    }

    #[test]
    fn matches_the_brute_force_reference_on_random_streams() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for case in 0..300 {
            let n_rates = 1 + rng.below(3) as usize;
            let rates: Vec<Rate> = (0..n_rates)
                .map(|_| Rate {
                    limit: 1 + rng.below(12),
                    window_ns: 1 + rng.below(1000),
                })
                .collect();
            let max_w = rates.iter().map(|r| r.limit).min().unwrap();
            let mut l = SlidingWindowLimiter::new(rates.clone()).unwrap();
            let mut reference = Reference {
                rates: rates.clone(),
                log: vec![],
                last: 0,
            };
            let mut t = 0u64;
            for step in 0..200 {
                // Mostly forward in time, sometimes repeated or (clamped) backwards timestamps.
                match rng.below(10) {
                    0 => t = t.saturating_sub(rng.below(50)),
                    1 => {}
                    _ => t += rng.below(150),
                }
                let w = 1 + rng.below(max_w);
                let want_wait = reference.wait(w, t);
                assert_eq!(
                    l.wait_ns("k", w as i64, t).unwrap(),
                    want_wait,
                    "case {case} step {step}"
                );
                let want = reference.try_acquire(w, t);
                assert_eq!(
                    l.try_acquire("k", w as i64, t).unwrap(),
                    want,
                    "case {case} step {step}"
                );
            }
            // Invariant on the final log: every window of each rate holds at most its limit.
            for r in &rates {
                for &(start, _) in &reference.log {
                    let held: u64 = reference
                        .log
                        .iter()
                        .filter(|(ts, _)| *ts >= start && *ts < start + r.window_ns)
                        .map(|(_, w)| w)
                        .sum();
                    assert!(held <= r.limit);
                }
            }
        }
    }

    #[test]
    fn buffer_stays_bounded_by_the_longest_window() {
        let mut l = lim(&[(100, 1e-6)]);
        for t in 0..100_000u64 {
            l.try_acquire("default", 1, t * 10).unwrap();
        }
        assert!(l.default.log.len() <= 100);
    }
}
