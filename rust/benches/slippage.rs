//! Criterion benches of the pure-Rust slippage model: one forecast, and a batch of 1M forecasts.
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use hybridtrader_core::slippage::{SlippageModel, SlippageParams};
use std::hint::black_box;

const TS: i64 = 1_714_570_200_000_000_000; // 2024-05-01 09:30 New York

fn model(n_symbols: usize) -> (SlippageModel, Vec<String>) {
    let mut m = SlippageModel::new(SlippageParams::default()).unwrap();
    let names: Vec<String> = (0..n_symbols).map(|i| format!("S{i:04}")).collect();
    for (i, name) in names.iter().enumerate() {
        let f = (i % 97) as f64;
        m.set_daily_stats(name, Some(1e5 + 5e5 * f), Some(80.0 + 3.0 * f))
            .unwrap();
        for b in 0..13 {
            m.update_spread(name, TS + b * 1_800_000_000_000, 2.0 + f / 10.0 + b as f64)
                .unwrap();
        }
    }
    (m, names)
}

fn bench(c: &mut Criterion) {
    let (m, names) = model(500);
    c.bench_function("forecast per call", |b| {
        b.iter(|| {
            m.forecast(black_box("S0042"), black_box(100.0), black_box(TS))
                .unwrap()
        })
    });

    let n = 1_000_000;
    // Deterministic pseudo-random rows (LCG): symbol codes, sizes and times over one session.
    let mut state = 12_345u64;
    let mut next = || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1);
        state >> 33
    };
    let codes: Vec<u32> = (0..n).map(|_| (next() % 500) as u32).collect();
    let qty: Vec<f64> = (0..n).map(|_| 1.0 + (next() % 100_000) as f64).collect();
    let price = vec![50.0; n];
    let ts: Vec<i64> = (0..n)
        .map(|_| TS + (next() % 23_400) as i64 * 1_000_000_000)
        .collect();
    let mut out = vec![0.0; n];
    let mut group = c.benchmark_group("forecast batch");
    group.throughput(Throughput::Elements(n as u64));
    group.sample_size(20);
    group.bench_function("1M rows, 500 symbols", |b| {
        b.iter(|| {
            m.forecast_batch(&names, &codes, &qty, &price, &ts, &mut out)
                .unwrap()
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
