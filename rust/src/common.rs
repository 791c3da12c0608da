//! The ground floor the domain modules share: order side, the hasher of their small lookup tables, and
//! the symbol table that interns names to dense ids.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// Side of an order or a fill.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Buy,
    Sell,
}

impl Side {
    /// `"buy"` or `"sell"` (exactly), else None; callers word their own error.
    pub fn parse(s: &str) -> Option<Side> {
        match s {
            "buy" => Some(Side::Buy),
            "sell" => Some(Side::Sell),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Side::Buy => "buy",
            Side::Sell => "sell",
        }
    }

    /// +1 for a buy, -1 for a sell.
    #[inline]
    pub fn sign(self) -> f64 {
        match self {
            Side::Buy => 1.0,
            Side::Sell => -1.0,
        }
    }

    /// `a` is at least as good a price as `b` for this side (a buyer pays less, a seller receives more).
    #[inline]
    pub fn at_or_better(self, a: f64, b: f64) -> bool {
        match self {
            Side::Buy => a <= b,
            Side::Sell => a >= b,
        }
    }
}

const HASH_K: u64 = 0x517c_c1b7_2722_0a95;

/// A small, fast, non-cryptographic hasher (FxHash-style multiply-rotate over 8-byte words) for keys the
/// process itself feeds: ticker symbols, sector and rate-limit key names, already-random u64 hashes. Not
/// DoS-resistant, which none of these tables needs.
///
/// Why this one of the four the crate had: eight bytes per multiply beats FNV-1a's one byte per multiply on
/// symbol-length keys, and `finish` rotates. A multiply only carries input bits upwards, so the low bits of
/// the raw state depend only on the low bytes of the key (`"S001"` and `"S002"` share them); hashbrown
/// picks the bucket from the low bits, so the two variants that returned the raw state crowded such symbols
/// into a few dozen buckets (the test below).
#[derive(Default, Clone, Copy)]
pub struct FastHasher(u64);

impl FastHasher {
    #[inline]
    fn mix(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(HASH_K);
    }
}

impl Hasher for FastHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.mix(u64::from_le_bytes(c.try_into().expect("8-byte chunk")));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut buf = [0u8; 8];
            buf[..rest.len()].copy_from_slice(rest);
            self.mix(u64::from_le_bytes(buf));
        }
    }
    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.mix(u64::from(i));
    }
    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.mix(u64::from(i));
    }
    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.mix(i);
    }
    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.mix(i as u64);
    }
    #[inline]
    fn finish(&self) -> u64 {
        // Bring the well-mixed high bits down to where hashbrown takes the bucket index.
        self.0.rotate_left(26)
    }
}

/// A `HashMap` with [`FastHasher`].
pub type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<FastHasher>>;

/// Names interned to dense ids `0, 1, 2, ...` in first-seen order.
#[derive(Default, Clone, Debug)]
pub struct SymbolTable {
    ids: FastMap<Box<str>, u32>,
    names: Vec<Box<str>>,
}

impl SymbolTable {
    /// The id of `name`, assigning the next id if it is new.
    #[inline]
    pub fn intern(&mut self, name: &str) -> u32 {
        if let Some(&id) = self.ids.get(name) {
            return id;
        }
        let id = self.names.len() as u32;
        self.names.push(name.into());
        self.ids.insert(name.into(), id);
        id
    }

    #[inline]
    pub fn get(&self, name: &str) -> Option<u32> {
        self.ids.get(name).copied()
    }

    pub fn name(&self, id: u32) -> Option<&str> {
        self.names.get(id as usize).map(|s| &**s)
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::BuildHasher;

    #[test]
    fn side_parses_exact_names() {
        assert_eq!(Side::parse("buy"), Some(Side::Buy));
        assert_eq!(Side::parse("sell"), Some(Side::Sell));
        assert_eq!(Side::parse("BUY"), None);
        assert_eq!((Side::Buy.sign(), Side::Sell.sign()), (1.0, -1.0));
    }

    #[test]
    fn symbols_sharing_low_bytes_spread_over_low_hash_bits() {
        // 1,000 tickers that differ only in their last characters: the low 10 bits of their hashes (the
        // bucket index of a 1,024-slot table) must take many values.
        let build = BuildHasherDefault::<FastHasher>::default();
        let buckets: std::collections::HashSet<u64> = (0..1000)
            .map(|i| build.hash_one(format!("S{i:03}")) & 1023)
            .collect();
        assert!(buckets.len() > 500, "only {} buckets", buckets.len());
    }

    #[test]
    fn symbol_table() {
        let mut t = SymbolTable::default();
        assert_eq!(
            (t.intern("AAPL"), t.intern("MSFT"), t.intern("AAPL")),
            (0, 1, 0)
        );
        assert_eq!(
            (t.get("MSFT"), t.get("X"), t.name(1), t.len()),
            (Some(1), None, Some("MSFT"), 2)
        );
        let long = "A_VERY_LONG_SYMBOL_NAME_1";
        assert_eq!(t.intern(long), 2);
        assert_eq!(t.get(long), Some(2));
    }
}
