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
}
