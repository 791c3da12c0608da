//! Criterion benches of the pure-Rust exposure manager: one order check against a book with 500 open
//! positions, and a batch of 1M independent checks.
use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use hybridtrader_core::common::Side;
use hybridtrader_core::exposure::{BookCaps, BreakerConfig, ExposureManager, Orders};

const N_SYMBOLS: usize = 600;

/// Deterministic pseudo-random numbers (xorshift) so the bench needs no extra crate.
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

fn manager() -> ExposureManager {
    let caps = BookCaps {
        max_gross_pct: 50.0,
        max_net_pct: 35.0,
        max_symbol_pct: 10.0,
        max_sector_pct: 25.0,
        max_order_notional: 100_000.0,
        max_open_positions: 1_000,
    };
    let breaker = BreakerConfig {
        max_daily_loss_pct: 3.0,
        max_drawdown_pct: 10.0,
        reduce_daily_loss_pct: None,
        reduce_drawdown_pct: None,
    };
    let mut m = ExposureManager::new(vec![("intraday".into(), caps)], breaker, true).unwrap();
    m.set_equity(10_000_000.0).unwrap();
    let mut rng = Rng(7);
    for i in 0..N_SYMBOLS {
        let sym = format!("S{i:03}");
        m.set_sector(&sym, Some(&format!("SEC{}", i % 11))).unwrap();
        if i < 500 {
            let q = (50 + rng.below(350)) as f64 * if rng.below(2) == 0 { 1.0 } else { -1.0 };
            m.update_position("intraday", &sym, q, 20.0 + rng.below(4000) as f64 / 100.0)
                .unwrap();
        }
    }
    m
}

fn check_order(c: &mut Criterion) {
    let m = manager();
    let mut g = c.benchmark_group("exposure");
    let syms: Vec<String> = (0..1024)
        .map(|i| format!("S{:03}", i % N_SYMBOLS))
        .collect();
    let mut i = 0usize;
    g.bench_function("check_order/500_positions", |b| {
        b.iter(|| {
            i = (i + 1) & 1023;
            let side = if i & 1 == 0 { Side::Buy } else { Side::Sell };
            black_box(
                m.check_order(
                    black_box(&syms[i]),
                    side,
                    100.0 + i as f64,
                    35.5,
                    "intraday",
                )
                .unwrap(),
            )
        })
    });
    let n = 1_000_000;
    let mut rng = Rng(11);
    let names: Vec<String> = (0..N_SYMBOLS).map(|i| format!("S{i:03}")).collect();
    let ids: Vec<u32> = (0..n).map(|_| rng.below(N_SYMBOLS as u64) as u32).collect();
    let signs: Vec<i8> = (0..n)
        .map(|_| if rng.below(2) == 0 { 1 } else { -1 })
        .collect();
    let qtys: Vec<f64> = (0..n).map(|_| 1.0 + rng.below(3000) as f64).collect();
    let prices: Vec<f64> = (0..n)
        .map(|_| 20.0 + rng.below(4000) as f64 / 100.0)
        .collect();
    let orders = Orders {
        names: &names,
        ids: &ids,
        signs: &signs,
        qtys: &qtys,
        prices: &prices,
    };
    let mut m = manager();
    g.sample_size(20);
    g.bench_function("check_batch/1M", |b| {
        b.iter(|| black_box(m.check_batch("intraday", &orders, false).unwrap()))
    });
    g.finish();
}

criterion_group!(benches, check_order);
criterion_main!(benches);
