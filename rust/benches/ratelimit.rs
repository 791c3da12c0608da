//! Criterion benches of the pure-Rust sliding-window limiter: one decision per iteration.
use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use hybridtrader_core::ratelimit::SlidingWindowLimiter;

/// (bench name, rates as (limit, window seconds), key)
type Case = (&'static str, &'static [(i64, f64)], &'static str);

fn try_acquire(c: &mut Criterion) {
    let mut g = c.benchmark_group("ratelimit");
    // Time advances 1 µs per call; limits are chosen so that each case is all-admitted or mostly refused.
    let cases: [Case; 4] = [
        ("admitted/default", &[(1_000_000_000, 60.0)], "default"),
        ("admitted/named_key", &[(1_000_000_000, 60.0)], "AAPL"),
        (
            "admitted/two_rates",
            &[(1_000_000_000, 60.0), (10_000_000, 1.0)],
            "default",
        ),
        ("rejected/default", &[(200, 60.0)], "default"),
    ];
    for (name, rates, key) in cases {
        let mut lim = SlidingWindowLimiter::from_secs(rates).unwrap();
        let mut now = 0u64;
        g.bench_function(name, |b| {
            b.iter(|| {
                now += 1_000;
                black_box(lim.try_acquire(black_box(key), 1, now).unwrap())
            })
        });
    }
    let mut lim = SlidingWindowLimiter::from_secs(&[(200, 60.0), (10, 1.0)]).unwrap();
    for t in 0..200u64 {
        lim.try_acquire("default", 1, t * 300_000_000).unwrap();
    }
    g.bench_function("wait_ns/full_windows", |b| {
        b.iter(|| {
            black_box(
                lim.wait_ns("default", black_box(5), 60_000_000_000)
                    .unwrap(),
            )
        })
    });
    g.finish();
}

criterion_group!(benches, try_acquire);
criterion_main!(benches);
