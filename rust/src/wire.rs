//! The fast path of stream frame parsing: an Alpaca or Polygon JSON frame made only of well-formed
//! trades, quotes and bars, straight into columns.
//!
//! Anything else (control messages, unknown types, a missing or mistyped field, a value no provider
//! sends such as a non-positive price, escaped strings, duplicate keys, timestamps in another form) makes
//! `parse_frame` return `None`, and the caller's general parser, which counts and skips bad messages one
//! by one, handles the frame. So this path never decides what is malformed; it only has to agree with
//! the general parser on the frames it accepts.

use crate::civil::{days_from_civil, days_in_month};
use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Provider {
    Alpaca,
    Polygon,
}

#[derive(Debug, Default, PartialEq)]
pub struct Trades<'a> {
    pub symbol: Vec<&'a str>,
    pub ts: Vec<i64>,
    pub price: Vec<f64>,
    pub size: Vec<f64>,
}

#[derive(Debug, Default, PartialEq)]
pub struct Quotes<'a> {
    pub symbol: Vec<&'a str>,
    pub ts: Vec<i64>,
    pub bid: Vec<f64>,
    pub ask: Vec<f64>,
    pub bid_size: Vec<f64>,
    pub ask_size: Vec<f64>,
}

#[derive(Debug, Default, PartialEq)]
pub struct Bars<'a> {
    pub symbol: Vec<&'a str>,
    pub ts: Vec<i64>,
    pub open: Vec<f64>,
    pub high: Vec<f64>,
    pub low: Vec<f64>,
    pub close: Vec<f64>,
    pub volume: Vec<f64>,
    pub vwap: Vec<f64>,
    /// Trade count; -1 where the provider sends none (Polygon aggregates).
    pub trades: Vec<i64>,
}

#[derive(Debug, Default, PartialEq)]
pub struct Parsed<'a> {
    pub messages: usize,
    pub trades: Trades<'a>,
    pub quotes: Quotes<'a>,
    pub bars: Bars<'a>,
}

/// One JSON value as far as the fast path cares: a number, an unescaped string, null, or anything else.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
enum Field<'a> {
    #[default]
    Missing,
    Null,
    Int(i64),
    Num(f64),
    Str(&'a str),
    Other,
}

impl<'a> Field<'a> {
    /// Any JSON number as f64 (ints included, as numpy turns a list of ints into floats).
    fn number(self) -> Option<f64> {
        match self {
            Field::Int(i) => Some(i as f64),
            Field::Num(x) => Some(x),
            _ => None,
        }
    }

    fn int(self) -> Option<i64> {
        match self {
            Field::Int(i) => Some(i),
            _ => None,
        }
    }

    fn text(self) -> Option<&'a str> {
        match self {
            Field::Str(s) => Some(s),
            _ => None,
        }
    }
}

struct FieldVisitor;

impl<'de> Visitor<'de> for FieldVisitor {
    type Value = Field<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_i64<E>(self, v: i64) -> Result<Field<'de>, E> {
        Ok(Field::Int(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Field<'de>, E> {
        Ok(i64::try_from(v).map_or(Field::Other, Field::Int))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Field<'de>, E> {
        Ok(Field::Num(v))
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Field<'de>, E> {
        Ok(Field::Str(v))
    }
    fn visit_str<E>(self, _: &str) -> Result<Field<'de>, E> {
        Ok(Field::Other) // an escaped string: left to the general parser
    }
    fn visit_bool<E>(self, _: bool) -> Result<Field<'de>, E> {
        Ok(Field::Other)
    }
    fn visit_unit<E>(self) -> Result<Field<'de>, E> {
        Ok(Field::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Field<'de>, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Field::Other)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Field<'de>, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Field::Other)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Field<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(FieldVisitor)
    }
}

/// The keys either provider uses for trades, quotes and bars; other keys are skipped.
#[derive(serde::Deserialize, Default)]
#[serde(default)]
struct Msg<'a> {
    #[serde(rename = "T", borrow)]
    alpaca_type: Field<'a>,
    #[serde(rename = "ev", borrow)]
    polygon_type: Field<'a>,
    #[serde(rename = "S", borrow)]
    alpaca_symbol: Field<'a>,
    #[serde(rename = "sym", borrow)]
    polygon_symbol: Field<'a>,
    #[serde(borrow)]
    t: Field<'a>,
    #[serde(borrow)]
    p: Field<'a>,
    #[serde(borrow)]
    s: Field<'a>,
    #[serde(borrow)]
    bp: Field<'a>,
    #[serde(borrow)]
    ap: Field<'a>,
    #[serde(borrow)]
    bs: Field<'a>,
    #[serde(rename = "as", borrow)]
    as_: Field<'a>,
    #[serde(borrow)]
    o: Field<'a>,
    #[serde(borrow)]
    h: Field<'a>,
    #[serde(borrow)]
    l: Field<'a>,
    #[serde(borrow)]
    c: Field<'a>,
    #[serde(borrow)]
    v: Field<'a>,
    #[serde(borrow)]
    vw: Field<'a>,
    #[serde(borrow)]
    n: Field<'a>,
}

/// Parses a whole frame on the fast path, or `None` when the general parser must handle it.
pub fn parse_frame(raw: &[u8], provider: Provider) -> Option<Parsed<'_>> {
    let msgs: Vec<Msg> = serde_json::from_slice(raw).ok()?;
    if msgs.is_empty() {
        return None;
    }
    let mut out = Parsed {
        messages: msgs.len(),
        ..Parsed::default()
    };
    for m in &msgs {
        match provider {
            Provider::Alpaca => alpaca(m, &mut out)?,
            Provider::Polygon => polygon(m, &mut out)?,
        }
    }
    Some(out)
}

fn alpaca<'a>(m: &Msg<'a>, out: &mut Parsed<'a>) -> Option<()> {
    let symbol = symbol(m.alpaca_symbol)?;
    let ts = m.t.text().and_then(rfc3339_utc_ns)?;
    match m.alpaca_type.text()? {
        "t" => trade(out, symbol, ts, m.p, m.s),
        "q" => quote(out, symbol, ts, m),
        "b" | "u" | "d" => bar(out, symbol, ts, m, m.n.int()?),
        _ => None,
    }
}

fn polygon<'a>(m: &Msg<'a>, out: &mut Parsed<'a>) -> Option<()> {
    let symbol = symbol(m.polygon_symbol)?;
    let ms_to_ns = |f: Field| f.int()?.checked_mul(1_000_000);
    match m.polygon_type.text()? {
        "T" => trade(out, symbol, ms_to_ns(m.t)?, m.p, m.s),
        "Q" => quote(out, symbol, ms_to_ns(m.t)?, m),
        "A" | "AM" => {
            let count = match m.n {
                Field::Missing | Field::Null => -1,
                f => f.int()?,
            };
            bar(out, symbol, ms_to_ns(m.s)?, m, count)
        }
        _ => None,
    }
}

fn symbol(f: Field<'_>) -> Option<&str> {
    f.text().filter(|s| !s.is_empty())
}

fn positive(f: Field) -> Option<f64> {
    f.number().filter(|x| x.is_finite() && *x > 0.0)
}

fn non_negative(f: Field) -> Option<f64> {
    f.number().filter(|x| x.is_finite() && *x >= 0.0)
}

fn trade<'a>(out: &mut Parsed<'a>, symbol: &'a str, ts: i64, p: Field, s: Field) -> Option<()> {
    let (price, size) = (positive(p)?, positive(s)?);
    let t = &mut out.trades;
    t.symbol.push(symbol);
    t.ts.push(ts);
    t.price.push(price);
    t.size.push(size);
    Some(())
}

fn quote<'a>(out: &mut Parsed<'a>, symbol: &'a str, ts: i64, m: &Msg) -> Option<()> {
    let (bid, ask) = (non_negative(m.bp)?, non_negative(m.ap)?);
    let (bid_size, ask_size) = (non_negative(m.bs)?, non_negative(m.as_)?);
    let q = &mut out.quotes;
    q.symbol.push(symbol);
    q.ts.push(ts);
    q.bid.push(bid);
    q.ask.push(ask);
    q.bid_size.push(bid_size);
    q.ask_size.push(ask_size);
    Some(())
}

fn bar<'a>(out: &mut Parsed<'a>, symbol: &'a str, ts: i64, m: &Msg, count: i64) -> Option<()> {
    let (open, high, low, close) = (
        positive(m.o)?,
        positive(m.h)?,
        positive(m.l)?,
        positive(m.c)?,
    );
    let (volume, vwap) = (non_negative(m.v)?, positive(m.vw)?);
    if high < low {
        return None;
    }
    let b = &mut out.bars;
    b.symbol.push(symbol);
    b.ts.push(ts);
    b.open.push(open);
    b.high.push(high);
    b.low.push(low);
    b.close.push(close);
    b.volume.push(volume);
    b.vwap.push(vwap);
    b.trades.push(count);
    Some(())
}

/// "YYYY-MM-DDTHH:MM:SS[.f{1,9}]Z" as ns since the epoch (UTC); `None` for any other form, or for a
/// year outside what int64 nanoseconds hold.
pub fn rfc3339_utc_ns(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    if *b.last()? != b'Z' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        b[r].iter().try_fold(0i64, |acc, &c| {
            c.is_ascii_digit().then(|| acc * 10 + i64::from(c - b'0'))
        })
    };
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let frac = &b[19..b.len() - 1];
    let nanos = match frac {
        [] => 0,
        [b'.', digits @ ..] if (1..=9).contains(&digits.len()) => {
            num(20..20 + digits.len())? * 10i64.pow(9 - digits.len() as u32)
        }
        _ => return None,
    };
    let valid = (1678..=2261).contains(&year)
        && (1..=12).contains(&month)
        && (1..=days_in_month(year, month)).contains(&day)
        && hour < 24
        && minute < 60
        && second < 60;
    if !valid {
        return None;
    }
    let secs = days_from_civil(year, month, day) * 86_400 + hour * 3_600 + minute * 60 + second;
    secs.checked_mul(1_000_000_000)?.checked_add(nanos)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps() {
        assert_eq!(rfc3339_utc_ns("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            rfc3339_utc_ns("2024-01-03T14:30:00.5Z"),
            Some(1_704_292_200_500_000_000)
        );
        assert_eq!(
            rfc3339_utc_ns("2024-02-29T00:00:00.000000001Z"),
            Some(1_709_164_800_000_000_001)
        );
        assert_eq!(rfc3339_utc_ns("1969-12-31T23:59:59.999999999Z"), Some(-1));
        for bad in [
            "2023-02-29T00:00:00Z",
            "2024-01-03T14:30:00",
            "2024-01-03T14:30:00+00:00",
            "2024-01-03T24:00:00Z",
            "2024-01-03T14:30:60Z",
            "2024-01-03T14:30:00.Z",
            "2024-01-03T14:30:00.1234567890Z",
            "2024-13-03T14:30:00Z",
            "2024-01-3T14:30:00ZZ",
            "9999-01-03T14:30:00Z",
            "2024-01-03 14:30:00Z",
        ] {
            assert_eq!(rfc3339_utc_ns(bad), None, "{bad}");
        }
    }

    #[test]
    fn alpaca_trades_quotes_bars() {
        let raw = br#"[{"T":"t","S":"AAPL","i":1,"x":"V","p":150.5,"s":100,"c":["@"],"t":"2024-01-03T14:30:00.000000001Z","z":"C"},
            {"T":"q","S":"MSFT","bx":"V","bp":10,"bs":1,"ax":"V","ap":10.5,"as":2,"c":["R"],"t":"2024-01-03T14:30:00Z","z":"C"},
            {"T":"b","S":"AAPL","o":1,"h":2,"l":0.5,"c":1.5,"v":10,"t":"2024-01-03T14:30:00Z","n":3,"vw":1.2}]"#;
        let p = parse_frame(raw, Provider::Alpaca).unwrap();
        assert_eq!(p.messages, 3);
        assert_eq!(p.trades.symbol, ["AAPL"]);
        assert_eq!(p.trades.ts, [1_704_292_200_000_000_001]);
        assert_eq!((p.trades.price[0], p.trades.size[0]), (150.5, 100.0));
        assert_eq!((p.quotes.bid[0], p.quotes.ask_size[0]), (10.0, 2.0));
        assert_eq!((p.bars.close[0], p.bars.trades[0]), (1.5, 3));
    }

    #[test]
    fn polygon_events() {
        let raw = br#"[{"ev":"T","sym":"AAPL","x":10,"i":"7","z":3,"p":1.5,"s":100,"c":[0],"t":1704292200000,"q":7},
            {"ev":"AM","sym":"AAPL","v":10,"av":10,"op":1,"vw":1.2,"o":1,"c":1.5,"h":2,"l":0.5,"a":1.2,"z":3,"s":1704292200000,"e":1704292260000}]"#;
        let p = parse_frame(raw, Provider::Polygon).unwrap();
        assert_eq!(p.trades.ts, [1_704_292_200_000_000_000]);
        assert_eq!(
            (p.bars.ts[0], p.bars.trades[0]),
            (1_704_292_200_000_000_000, -1)
        );
    }

    #[test]
    fn anything_unusual_goes_to_the_general_parser() {
        let good = r#"{"T":"t","S":"AAPL","p":1.5,"s":100,"t":"2024-01-03T14:30:00Z"}"#;
        assert!(parse_frame(format!("[{good}]").as_bytes(), Provider::Alpaca).is_some());
        for bad in [
            r#"{"T":"success","msg":"connected"}"#,
            r#"{"T":"zz"}"#,
            r#"{"T":"t","S":"AAPL","p":-1.5,"s":100,"t":"2024-01-03T14:30:00Z"}"#,
            r#"{"T":"t","S":"AAPL","p":"1.5","s":100,"t":"2024-01-03T14:30:00Z"}"#,
            r#"{"T":"t","S":"","p":1.5,"s":100,"t":"2024-01-03T14:30:00Z"}"#,
            r#"{"T":"t","S":"AA\u0050L","p":1.5,"s":100,"t":"2024-01-03T14:30:00Z"}"#,
            r#"{"T":"t","S":"AAPL","p":1.5,"p":1.6,"s":100,"t":"2024-01-03T14:30:00Z"}"#,
            r#"{"T":"t","S":"AAPL","p":1.5,"s":true,"t":"2024-01-03T14:30:00Z"}"#,
            r#"{"T":"t","S":"AAPL","p":1.5,"s":100}"#,
            r#"{"T":"b","S":"AAPL","o":1,"h":2,"l":0.5,"c":1.5,"v":10,"t":"2024-01-03T14:30:00Z","n":3.0,"vw":1.2}"#,
            r#"{"T":"b","S":"AAPL","o":1,"h":0.4,"l":0.5,"c":1.5,"v":10,"t":"2024-01-03T14:30:00Z","n":3,"vw":1.2}"#,
            r#"7"#,
        ] {
            let frame = format!("[{good},{bad}]");
            assert!(
                parse_frame(frame.as_bytes(), Provider::Alpaca).is_none(),
                "{bad}"
            );
        }
        assert!(parse_frame(good.as_bytes(), Provider::Alpaca).is_none()); // a bare object
        assert!(parse_frame(b"[]", Provider::Alpaca).is_none());
        assert!(parse_frame(b"[{", Provider::Alpaca).is_none());
    }
}
