//! Exits of labelled trades: for each event (an entry row in bars sorted by symbol and time), the first
//! later bar whose close touches the trade's exit rule, within the event's room (the bars it may hold:
//! the horizon, cut at the end of its symbol or session). The rules are those of `hybridtrader.ml.labels`
//! (`reverted`, `barrier_touch`); this is their batch form, one forward scan per event that stops at the
//! first touch, so the work follows the trades' real lengths.

use std::fmt;

/// How a trade ended: a barrier's kind (+1 profit-take or reversion, -1 stop), or 0 when its room ran out.
pub type Kind = i8;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LabelError {
    /// Per-event columns of different lengths.
    Lengths {
        what: &'static str,
        got: usize,
        events: usize,
    },
    /// An event whose forward room leaves the close column (or is not at least one bar).
    Room {
        event: usize,
        row: i64,
        room: i64,
        bars: usize,
    },
}

impl fmt::Display for LabelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LabelError::Lengths { what, got, events } => {
                write!(f, "labels: {what} has {got} values for {events} events")
            }
            LabelError::Room {
                event,
                row,
                room,
                bars,
            } => write!(
                f,
                "labels: event {event} at row {row} with room {room} does not fit in {bars} bars \
                 (room must be >= 1 and row + room < bars)"
            ),
        }
    }
}

impl std::error::Error for LabelError {}

/// Each event's exit: its row and its kind.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Exits {
    pub row: Vec<i64>,
    pub kind: Vec<Kind>,
}

fn check_len(what: &'static str, got: usize, events: usize) -> Result<(), LabelError> {
    if got == events {
        Ok(())
    } else {
        Err(LabelError::Lengths { what, got, events })
    }
}

/// The scan shared by every rule: event i holds bars `rows[i] + 1 ..= rows[i] + room[i]`; the first
/// bar where `touch(i, close)` gives a kind ends it there, else it ends on its last bar with kind 0.
fn scan(
    close: &[f64],
    rows: &[i64],
    room: &[i64],
    touch: impl Fn(usize, f64) -> Option<Kind>,
) -> Result<Exits, LabelError> {
    check_len("room", room.len(), rows.len())?;
    let mut out = Exits {
        row: Vec::with_capacity(rows.len()),
        kind: Vec::with_capacity(rows.len()),
    };
    for (i, (&row, &len)) in rows.iter().zip(room).enumerate() {
        let fits =
            row >= 0 && len >= 1 && usize::try_from(row + len).is_ok_and(|end| end < close.len());
        if !fits {
            let (room, bars) = (len, close.len());
            return Err(LabelError::Room {
                event: i,
                row,
                room,
                bars,
            });
        }
        let start = row as usize;
        let path = &close[start + 1..=start + len as usize];
        let hit = path
            .iter()
            .enumerate()
            .find_map(|(k, &c)| touch(i, c).map(|kind| (k, kind)));
        let (offset, kind) = hit.map_or((len, 0), |(k, kind)| (k as i64 + 1, kind));
        out.row.push(row + offset);
        out.kind.push(kind);
    }
    Ok(out)
}

/// Mean reversion: the trade ends at the first close on the other side of (or at) its entry-time mean,
/// `side * (close - mean) >= 0` (kind +1; a NaN mean never touches).
pub fn reversion_exits(
    close: &[f64],
    rows: &[i64],
    room: &[i64],
    side: &[f64],
    mean: &[f64],
) -> Result<Exits, LabelError> {
    check_len("side", side.len(), rows.len())?;
    check_len("mean", mean.len(), rows.len())?;
    scan(close, rows, room, |i, c| {
        (side[i] * (c - mean[i]) >= 0.0).then_some(1)
    })
}

/// Triple barrier: on the side-adjusted log return since the entry close, `path = side * ln(close /
/// entry)`, the trade ends at the first `path >= upper` (kind +1, checked first) or `path <= lower`
/// (kind -1); `upper` and `lower` are the event's barriers in log-return units.
pub fn barrier_exits(
    close: &[f64],
    rows: &[i64],
    room: &[i64],
    side: &[f64],
    upper: &[f64],
    lower: &[f64],
) -> Result<Exits, LabelError> {
    check_len("side", side.len(), rows.len())?;
    check_len("upper", upper.len(), rows.len())?;
    check_len("lower", lower.len(), rows.len())?;
    let bands: Vec<Band> = (0..rows.len())
        .map(|i| Band::of(side[i], upper[i], lower[i]))
        .collect();
    // `scan` checks every row before it calls the rule, so the entry close is in the column.
    scan(close, rows, room, |i, c| {
        let ratio = c / close[rows[i] as usize];
        if bands[i].inside(ratio) {
            return None;
        }
        let path = side[i] * ratio.ln();
        if path >= upper[i] {
            Some(1)
        } else if path <= lower[i] {
            Some(-1)
        } else {
            None
        }
    })
}

/// Price ratios (close / entry) that certainly touch neither barrier, so that most bars skip the
/// logarithm: strictly between exp(barriers) narrowed by a relative 1e-9, far beyond the rounding of exp
/// and ln (about 1e-16), so a ratio inside gives a path strictly between the barriers however either is
/// rounded. Empty (every ratio takes the exact test) when a barrier is not finite or exp of it leaves
/// the range of normal floats.
struct Band {
    low: f64,
    high: f64,
}

impl Band {
    const MARGIN: f64 = 1e-9;
    const LIMIT: f64 = 700.0; // |x| below this: exp(x) is a normal float

    fn of(side: f64, upper: f64, lower: f64) -> Band {
        // In ln(ratio) units the touches are ln >= hi or ln <= lo (a side of -1 mirrors the barriers).
        let (hi, lo) = if side > 0.0 {
            (upper, lower)
        } else if side < 0.0 {
            (-lower, -upper)
        } else {
            (f64::NAN, f64::NAN) // a zero side: path 0, the exact test decides
        };
        if hi.abs() < Self::LIMIT && lo.abs() < Self::LIMIT {
            Band {
                low: lo.exp() * (1.0 + Self::MARGIN),
                high: hi.exp() * (1.0 - Self::MARGIN),
            }
        } else {
            Band {
                low: f64::INFINITY,
                high: f64::NEG_INFINITY,
            }
        }
    }

    fn inside(&self, ratio: f64) -> bool {
        ratio > self.low && ratio < self.high
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reversion_exits_at_first_close_across_the_mean() {
        // Long (side +1) below a mean of 10: exits on the first close >= 10.
        let close = [9.0, 9.5, 9.8, 10.0, 11.0, 8.0];
        let e = reversion_exits(&close, &[0], &[5], &[1.0], &[10.0]).unwrap();
        assert_eq!(
            e,
            Exits {
                row: vec![3],
                kind: vec![1]
            }
        );
        // Short (side -1) above a mean of 9: the first close <= 9 is row 5.
        let e = reversion_exits(&close, &[3], &[2], &[-1.0], &[9.0]).unwrap();
        assert_eq!(
            e,
            Exits {
                row: vec![5],
                kind: vec![1]
            }
        );
    }

    #[test]
    fn no_touch_ends_on_the_last_bar_of_the_room() {
        let close = [9.0, 9.1, 9.2, 9.3, 12.0];
        let e = reversion_exits(&close, &[0], &[3], &[1.0], &[10.0]).unwrap();
        assert_eq!(
            e,
            Exits {
                row: vec![3],
                kind: vec![0]
            }
        );
        // A NaN mean never touches.
        let e = reversion_exits(&close, &[0], &[4], &[1.0], &[f64::NAN]).unwrap();
        assert_eq!(
            e,
            Exits {
                row: vec![4],
                kind: vec![0]
            }
        );
    }

    #[test]
    fn barrier_exits_profit_take_and_stop() {
        let close = [100.0, 101.0, 103.0, 96.0, 100.0];
        let up = (1.02f64).ln();
        let down = -(1.03f64).ln();
        // Long: +3% at row 2 passes the +2% barrier.
        let e = barrier_exits(&close, &[0], &[4], &[1.0], &[up], &[down]).unwrap();
        assert_eq!(
            e,
            Exits {
                row: vec![2],
                kind: vec![1]
            }
        );
        // Short from row 1 (101): 103 is -1.96%, 96 is +5.1% for the short: profit-take at row 3.
        let e = barrier_exits(&close, &[1], &[3], &[-1.0], &[up], &[down]).unwrap();
        assert_eq!(
            e,
            Exits {
                row: vec![3],
                kind: vec![1]
            }
        );
        // Long from row 2 (103): 96 is -7%: the stop at row 3.
        let e = barrier_exits(&close, &[2], &[2], &[1.0], &[up], &[down]).unwrap();
        assert_eq!(
            e,
            Exits {
                row: vec![3],
                kind: vec![-1]
            }
        );
        // Barriers out of reach: the vertical barrier.
        let e = barrier_exits(&close, &[0], &[4], &[1.0], &[1.0], &[-1.0]).unwrap();
        assert_eq!(
            e,
            Exits {
                row: vec![4],
                kind: vec![0]
            }
        );
    }

    #[test]
    fn ratios_next_to_the_barriers_take_the_exact_test() {
        // Closes one ulp either side of exp(barrier) x entry: the band skips none of them wrongly.
        let entry = 100.0f64;
        for side in [1.0f64, -1.0] {
            for barrier in [0.01f64, 0.003, 0.2] {
                let edge = entry * (side * barrier).exp();
                for c in [
                    edge,
                    f64::from_bits(edge.to_bits() - 1),
                    f64::from_bits(edge.to_bits() + 1),
                ] {
                    let path = side * (c / entry).ln();
                    let want = if path >= barrier {
                        1
                    } else if path <= -barrier {
                        -1
                    } else {
                        0
                    };
                    let e =
                        barrier_exits(&[entry, c], &[0], &[1], &[side], &[barrier], &[-barrier])
                            .unwrap();
                    assert_eq!(
                        e.kind,
                        vec![want],
                        "side {side} barrier {barrier} close {c}"
                    );
                }
            }
        }
        // Barriers beyond the band's range and a zero side still give the exact answers.
        let e = barrier_exits(&[1.0, 1e300], &[0], &[1], &[1.0], &[800.0], &[-800.0]).unwrap();
        assert_eq!(e.kind, vec![0]);
        let e = barrier_exits(&[1.0, 2.0], &[0], &[1], &[0.0], &[0.0], &[-1.0]).unwrap();
        assert_eq!(e.kind, vec![1]);
    }

    #[test]
    fn several_events_keep_their_order() {
        let close = [1.0, 2.0, 3.0, 2.0, 1.0, 2.0];
        let e = reversion_exits(
            &close,
            &[0, 2, 3],
            &[5, 3, 2],
            &[1.0, -1.0, 1.0],
            &[2.5, 1.5, 1.8],
        )
        .unwrap();
        assert_eq!(
            e,
            Exits {
                row: vec![2, 4, 5],
                kind: vec![1, 1, 1]
            }
        );
    }

    #[test]
    fn bad_input_is_an_error_naming_it() {
        let close = [1.0, 2.0, 3.0];
        let err = reversion_exits(&close, &[1], &[2], &[1.0], &[1.0]).unwrap_err();
        assert_eq!(
            err,
            LabelError::Room {
                event: 0,
                row: 1,
                room: 2,
                bars: 3
            }
        );
        assert!(err.to_string().contains("row 1 with room 2"));
        let err = reversion_exits(&close, &[0], &[0], &[1.0], &[1.0]).unwrap_err();
        assert!(matches!(err, LabelError::Room { room: 0, .. }));
        let err = reversion_exits(&close, &[-1], &[1], &[1.0], &[1.0]).unwrap_err();
        assert!(matches!(err, LabelError::Room { row: -1, .. }));
        let err = barrier_exits(&close, &[0], &[1], &[1.0], &[0.1], &[]).unwrap_err();
        assert_eq!(
            err,
            LabelError::Lengths {
                what: "lower",
                got: 0,
                events: 1
            }
        );
        let err = reversion_exits(&close, &[0, 1], &[1], &[1.0, 1.0], &[1.0, 1.0]).unwrap_err();
        assert_eq!(
            err,
            LabelError::Lengths {
                what: "room",
                got: 1,
                events: 2
            }
        );
    }

    #[test]
    fn no_events_no_exits() {
        let e = barrier_exits(&[1.0], &[], &[], &[], &[], &[]).unwrap();
        assert_eq!(e, Exits::default());
    }
}
