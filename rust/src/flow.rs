//! The engine's order flow, its part without Python objects: the shares behind each (book, symbol)'s
//! exposure. A symbol's exposure in a book is its filled shares plus its open orders' remaining signed
//! shares (pending: never intentions), so that the exposure caps see what could still fill.

use crate::common::FastMap;

/// Filled and pending signed shares per (book, symbol).
#[derive(Debug, Default)]
pub struct BookShares {
    // book -> symbol -> (filled, pending); nested so that lookups by &str allocate nothing, with the fast
    // hasher (four lookups per order sent and per fill)
    by_book: FastMap<String, FastMap<String, (f64, f64)>>,
}

impl BookShares {
    fn entry(&mut self, book: &str, symbol: &str) -> &mut (f64, f64) {
        if !self.by_book.contains_key(book) {
            self.by_book.insert(book.to_owned(), FastMap::default());
        }
        let symbols = self.by_book.get_mut(book).expect("inserted above");
        if !symbols.contains_key(symbol) {
            symbols.insert(symbol.to_owned(), (0.0, 0.0));
        }
        symbols.get_mut(symbol).expect("inserted above")
    }

    /// `signed` more shares filled.
    pub fn fill(&mut self, book: &str, symbol: &str, signed: f64) {
        self.entry(book, symbol).0 += signed;
    }

    /// Open orders' remaining shares moved by `delta`; the exposure's shares after it (filled + pending).
    pub fn add_pending(&mut self, book: &str, symbol: &str, delta: f64) -> f64 {
        let e = self.entry(book, symbol);
        e.1 += delta;
        e.0 + e.1
    }

    /// (filled, pending) shares of (book, symbol); zeros when it never had an order.
    pub fn get(&self, book: &str, symbol: &str) -> (f64, f64) {
        self.by_book
            .get(book)
            .and_then(|s| s.get(symbol))
            .copied()
            .unwrap_or((0.0, 0.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposure_is_filled_plus_pending_per_book_and_symbol() {
        let mut s = BookShares::default();
        assert_eq!(s.add_pending("swing", "AAA", 100.0), 100.0); // a buy of 100 sent
        s.fill("swing", "AAA", 40.0); // 40 of it filled...
        assert_eq!(s.add_pending("swing", "AAA", -40.0), 100.0); // ...and left the pending shares
        assert_eq!(s.add_pending("intraday", "AAA", -30.0), -30.0); // another book: its own
        assert_eq!(s.add_pending("swing", "AAA", -60.0), 40.0); // the rest canceled
        assert_eq!(s.get("swing", "AAA"), (40.0, 0.0));
        assert_eq!(s.get("swing", "BBB"), (0.0, 0.0));
    }
}
