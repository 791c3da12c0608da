//! Average-cost bookkeeping of one position (a strategy's shares of one symbol), fill by fill.
//!
//! A fill that grows a position moves its average price to the quantity-weighted mean; a fill that shrinks
//! it realises (price - avg) x closed shares x sign(position); a fill that crosses zero closes the old
//! position and opens the remainder at the fill price. A position within `FLAT_EPS` of zero is flat.

/// Shares closer to zero than this are none (sums of float fills may not cancel exactly).
pub const FLAT_EPS: f64 = 1e-9;

#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Position {
    pub qty: f64,
    pub avg_price: f64,
    pub realized: f64,
    pub fees: f64,
    pub bought: f64, // notional traded, for turnover
    pub sold: f64,
}

impl Position {
    /// Book a fill of `qty` shares (> 0) bought (`buy`) or sold at `price` with `fee`; the P&L it
    /// realised (before fees).
    pub fn apply_fill(&mut self, buy: bool, qty: f64, price: f64, fee: f64) -> f64 {
        let signed = if buy { qty } else { -qty };
        let mut realized = 0.0;
        if self.qty == 0.0 || (self.qty > 0.0) == (signed > 0.0) {
            let total = self.qty + signed;
            self.avg_price = (self.avg_price * self.qty.abs() + price * qty) / total.abs();
            self.qty = total;
        } else {
            let closed = qty.min(self.qty.abs());
            realized = (price - self.avg_price) * closed * if self.qty > 0.0 { 1.0 } else { -1.0 };
            self.qty += signed;
            if self.qty.abs() < FLAT_EPS {
                self.qty = 0.0;
                self.avg_price = 0.0;
            } else if (self.qty > 0.0) == (signed > 0.0) {
                self.avg_price = price; // crossed zero: the rest opens at the fill price
            }
        }
        self.realized += realized;
        self.fees += fee;
        if buy {
            self.bought += qty * price;
        } else {
            self.sold += qty * price;
        }
        realized
    }
}

/// The account's shares of a symbol after `signed` more: None when that leaves it flat.
pub fn net_after(held: Option<f64>, signed: f64) -> Option<f64> {
    let net = held.unwrap_or(0.0) + signed;
    (net.abs() >= FLAT_EPS).then_some(net)
}

/// numpy's pairwise block: rows up to this long are summed with eight accumulators, longer ones halved.
const PAIRWISE_BLOCK: usize = 128;

/// `np.add.reduce` of a float64 row, bit for bit: numpy's pairwise summation (eight accumulators over a
/// block, halves of a longer row at a multiple of eight) added to 0.0, its identity.
pub fn numpy_sum(values: &[f64]) -> f64 {
    0.0 + pairwise(values)
}

fn pairwise(a: &[f64]) -> f64 {
    let n = a.len();
    if n < 8 {
        return a.iter().fold(-0.0, |sum, x| sum + x);
    }
    if n > PAIRWISE_BLOCK {
        let half = n / 2 - (n / 2) % 8;
        return pairwise(&a[..half]) + pairwise(&a[half..]);
    }
    let mut r = [0.0; 8];
    r.copy_from_slice(&a[..8]);
    let whole = n - n % 8;
    for chunk in a[8..whole].chunks_exact(8) {
        for (acc, x) in r.iter_mut().zip(chunk) {
            *acc += x;
        }
    }
    let mut sum = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
    for x in &a[whole..] {
        sum += x;
    }
    sum
}

/// Net and gross value of `shares` (one per symbol) at one row of `prices`: the sums of price x shares
/// and of its absolute value, as numpy sums them (`numpy_sum`), in `values` (a buffer, any contents).
pub fn marked_row(shares: &[f64], prices: &[f64], values: &mut Vec<f64>) -> (f64, f64) {
    values.clear();
    values.extend(prices.iter().zip(shares).map(|(p, q)| p * q));
    let net = numpy_sum(values);
    for v in values.iter_mut() {
        *v = v.abs();
    }
    (net, numpy_sum(values))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_then_crossing_to_short_by_hand() {
        let mut p = Position::default();
        assert_eq!(p.apply_fill(true, 100.0, 10.0, 1.0), 0.0);
        assert_eq!(p.apply_fill(true, 100.0, 12.0, 1.0), 0.0);
        assert_eq!((p.qty, p.avg_price), (200.0, 11.0));
        // sells 300: closes 200 at 12.5 (realises 300), opens a 100 short at 12.5
        assert_eq!(p.apply_fill(false, 300.0, 12.5, 1.5), 300.0);
        assert_eq!(
            (p.qty, p.avg_price, p.realized, p.fees),
            (-100.0, 12.5, 300.0, 3.5)
        );
        assert_eq!((p.bought, p.sold), (2200.0, 3750.0));
        // covers the short at 13: realises -50 and is flat
        assert_eq!(p.apply_fill(true, 100.0, 13.0, 0.0), -50.0);
        assert_eq!((p.qty, p.avg_price), (0.0, 0.0));
    }

    #[test]
    fn net_is_none_when_flat() {
        assert_eq!(net_after(None, 5.0), Some(5.0));
        assert_eq!(net_after(Some(5.0), -5.0), None);
        assert_eq!(net_after(Some(0.1 + 0.2), -0.3), None);
    }

    /// The pairwise rule restated on a hand-worked row: nine values, eight accumulators and one rest.
    #[test]
    fn numpy_sum_by_hand() {
        let a = [1e16, 1.0, -1e16, 1.0, 0.5, 0.25, 0.125, 2.0, 3.0];
        // accumulators are the first eight; ((1e16+1)+(-1e16+1)) + ((0.5+0.25)+(0.125+2)), then + 3
        let expected: f64 = ((1e16 + 1.0) + (-1e16 + 1.0)) + ((0.5 + 0.25) + (0.125 + 2.0)) + 3.0;
        assert_eq!(numpy_sum(&a).to_bits(), expected.to_bits());
        // fewer than eight: left to right from zero; a row of negative zeros sums to +0.0 as numpy's does
        assert_eq!(numpy_sum(&[1e16, 1.0, -1e16]), 0.0);
        assert_eq!(numpy_sum(&[-0.0, -0.0]).to_bits(), 0.0f64.to_bits());
    }

    #[test]
    fn marked_row_values_net_and_gross() {
        let mut buf = vec![7.0; 3]; // stale contents are overwritten
        let (net, gross) = marked_row(&[100.0, -50.0, 0.0], &[10.0, 20.0, 30.0], &mut buf);
        assert_eq!((net, gross), (0.0, 2000.0));
    }
}
