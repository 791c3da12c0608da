//! Criterion benches of the pure-Rust fill simulator: one submit (the per-order path), one quote against
//! a book of resting orders, and a day of one-minute bars for 50 symbols with market orders.
use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use hybridtrader_core::fills::{Bar, BarColumns, Fees, FillSimulator, Quote, Request, Settings};

const MIN: i64 = 60_000_000_000;
const OPEN: i64 = 1_000 * MIN;
const CLOSE: i64 = OPEN + 390 * MIN;

fn settings() -> Settings {
    Settings {
        fees: Fees {
            commission_per_share: 0.0,
            commission_min: 0.0,
            sec_fee_rate: 27.8e-6,
            taf_per_share: 0.000166,
            taf_cap: 8.30,
        },
        entry_latency_ns: 50_000_000,
        ack_latency_ns: 20_000_000,
        bar_participation: 0.1,
    }
}

fn request<'a>(id: &'a str, symbol: u32, order_type: &'a str, ts: i64) -> Request<'a> {
    Request {
        id,
        symbol,
        side: "buy",
        order_type,
        tif: "day",
        qty: 100.0,
        limit: (order_type == "limit").then_some(5.0),
        stop: None,
        ts,
        impact_bps: 1.0,
        session_open: OPEN,
        session_close: CLOSE,
    }
}

fn submit(c: &mut Criterion) {
    let mut g = c.benchmark_group("fills");
    let ids: Vec<String> = (0..100_000).map(|i| format!("order-{i}")).collect();
    g.bench_function("submit/limit_resting", |b| {
        let mut sim = FillSimulator::new(settings()).unwrap();
        let mut i = 0usize;
        b.iter(|| {
            if i == ids.len() {
                sim = FillSimulator::new(settings()).unwrap();
                i = 0;
            }
            let slot = sim.submit(&request(&ids[i], (i % 50) as u32, "limit", OPEN + i as i64));
            i += 1;
            if i.is_multiple_of(1024) {
                black_box(sim.drain());
            }
            black_box(slot)
        })
    });
    // 1,000 resting limits on one symbol: one quote checks each of them
    let mut sim = FillSimulator::new(settings()).unwrap();
    for id in ids.iter().take(1_000) {
        sim.submit(&request(id, 0, "limit", OPEN));
    }
    let mut t = OPEN + MIN;
    // symbol 0 holds the 1,000 resting orders, symbol 7 none
    for (name, symbol) in [("quote/1000_resting", 0), ("quote/no_orders", 7)] {
        g.bench_function(name, |b| {
            b.iter(|| {
                t += 1_000;
                let q = Quote {
                    ts: t,
                    bid: 9.9,
                    ask: 10.0,
                    bid_size: 100.0,
                    ask_size: 100.0,
                };
                sim.on_quote(symbol, black_box(&q));
            })
        });
    }
    g.finish();
}

fn bars(c: &mut Criterion) {
    // 50 symbols x 390 one-minute bars, a 100-share market order per symbol every 10 bars
    let n_sym = 50usize;
    let rows: Vec<(u32, Bar)> = (0..390)
        .flat_map(|m| {
            (0..n_sym).map(move |s| {
                let p = 10.0 + (m as f64 * 0.37 + s as f64).sin();
                let bar = Bar {
                    ts: OPEN + m as i64 * MIN,
                    open: p,
                    high: p + 0.05,
                    low: p - 0.05,
                    close: p + 0.01,
                    volume: 2_000.0,
                };
                (s as u32, bar)
            })
        })
        .collect();
    let ids: Vec<String> = (0..rows.len()).map(|i| format!("o{i}")).collect();
    let mut g = c.benchmark_group("fills");
    g.throughput(criterion::Throughput::Elements(rows.len() as u64));
    g.bench_function("bars/50x390_with_orders", |b| {
        b.iter(|| {
            let mut sim = FillSimulator::new(settings()).unwrap();
            for (i, (s, bar)) in rows.iter().enumerate() {
                if (i / n_sym).is_multiple_of(10) {
                    sim.submit(&request(&ids[i], *s, "market", bar.ts - MIN));
                }
                sim.on_bar(*s, bar);
            }
            black_box(sim.drain().len())
        })
    });
    let ts: Vec<i64> = rows.iter().map(|(_, b)| b.ts).collect();
    let col = |f: fn(&Bar) -> f64| -> Vec<f64> { rows.iter().map(|(_, b)| f(b)).collect() };
    let (o, h, l, cl, v) = (
        col(|b| b.open),
        col(|b| b.high),
        col(|b| b.low),
        col(|b| b.close),
        col(|b| b.volume),
    );
    let syms: Vec<u32> = rows.iter().map(|(s, _)| *s).collect();
    g.bench_function("bars/50x390_batch_no_orders", |b| {
        b.iter(|| {
            let mut sim = FillSimulator::new(settings()).unwrap();
            let cols = BarColumns {
                ts: &ts,
                open: &o,
                high: &h,
                low: &l,
                close: &cl,
                volume: &v,
            };
            sim.on_bars(&syms, cols, MIN).unwrap();
            black_box(sim.drain().len())
        })
    });
    g.finish();
}

criterion_group!(benches, submit, bars);
criterion_main!(benches);
