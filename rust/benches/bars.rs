//! Criterion benches of the pure-Rust bar engine: batch 1-minute bars, streaming pushes, hash interning.
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use hybridtrader_core::bars::{
    aggregate, aggregate_hashed, aggregate_runs, codes_from_hashes, Aggregator, BarColumns, Rule,
    TradeBars, Trades,
};
use std::hint::black_box;

const N: usize = 1_000_000;
const SYMBOLS: u32 = 100;

/// Trades in time order, symbols interleaved: ~5 trades per symbol per second over a day-long range.
fn trades() -> (Vec<u32>, Vec<i64>, Vec<f64>, Vec<f64>) {
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut t = 1_700_000_000_000_000_000i64;
    let (mut s, mut ts, mut p, mut q) = (vec![], vec![], vec![], vec![]);
    for _ in 0..N {
        t += (next() % 4_000_000) as i64;
        s.push((next() % SYMBOLS as u64) as u32);
        ts.push(t);
        p.push(100.0 + (next() % 1000) as f64 * 0.01);
        q.push(1.0 + (next() % 500) as f64);
    }
    (s, ts, p, q)
}

fn benches(c: &mut Criterion) {
    let (s, ts, p, q) = trades();
    let minute = Rule::Time {
        every: 60_000_000_000,
        origin: 0,
    };
    let mut g = c.benchmark_group("bars");
    g.throughput(Throughput::Elements(N as u64));
    g.bench_function("aggregate_1m_batch", |b| {
        b.iter(|| aggregate::<Trades>(minute, &s, SYMBOLS as usize, &ts, &p, &q).unwrap())
    });
    g.bench_function("aggregate_ticks_100_batch", |b| {
        b.iter(|| aggregate::<Trades>(Rule::Ticks(100), &s, SYMBOLS as usize, &ts, &p, &q).unwrap())
    });
    g.bench_function("push_1m_stream", |b| {
        b.iter_batched(
            || {
                (
                    Aggregator::<Trades>::new(minute).unwrap(),
                    TradeBars::default(),
                )
            },
            |(mut agg, mut out)| {
                for i in 0..N {
                    agg.push(s[i], ts[i], (p[i], q[i]), &mut out);
                }
                black_box(out.len())
            },
            BatchSize::LargeInput,
        )
    });
    let h1: Vec<u64> = s
        .iter()
        .map(|&x| u64::from(x).wrapping_mul(0x9E37_79B9_7F4A_7C15))
        .collect();
    let h2: Vec<u64> = s.iter().map(|&x| u64::from(x) ^ 0x1234).collect();
    g.bench_function("codes_from_hashes", |b| {
        b.iter(|| codes_from_hashes(&h1, &h2).unwrap())
    });
    g.bench_function("aggregate_hashed_1m_batch", |b| {
        b.iter(|| aggregate_hashed::<Trades>(minute, &h1, &h2, &ts, &p, &q).unwrap())
    });
    // The same trades grouped by symbol, as a store sorted by (symbol, ts) holds them.
    let mut grouped: Vec<usize> = (0..N).collect();
    grouped.sort_by_key(|&i| (s[i], ts[i]));
    let gts: Vec<i64> = grouped.iter().map(|&i| ts[i]).collect();
    let gp: Vec<f64> = grouped.iter().map(|&i| p[i]).collect();
    let gq: Vec<f64> = grouped.iter().map(|&i| q[i]).collect();
    let mut runs = vec![0u64; SYMBOLS as usize];
    for &x in &s {
        runs[x as usize] += 1;
    }
    g.bench_function("aggregate_runs_1m_batch_grouped", |b| {
        b.iter(|| aggregate_runs::<Trades>(minute, &runs, &gts, &gp, &gq).unwrap())
    });
    g.finish();
}

criterion_group!(bars, benches);
criterion_main!(bars);
