//! The numeric columns of a segment and the per-stream predictions that make their values
//! small. Order of the columns (fixed for segment version 1):
//!
//! | column | what | residual |
//! |---|---|---|
//! | 0 | stream code | code − previous event's code − 1 |
//! | 1 | offset | gap to the previous packed event − 1 |
//! | 2 | seq | seq − the stream's previous seq − 1 |
//! | 3 | recorded_at_ms | minus the previous event's |
//! | 4 | timestamp_ms | delta-of-delta within the stream |
//! | 5–8 | the four gauges' states | 0 none, 1 same bits as the stream's last value, 2 new |
//! | 9–12 | the four gauges' new values | as they are |
//! | 13, 14 | qp_errors: state (0 none, 1 some), delta-of-delta of the some |
//! | 15 | rest | 0 same as the stream's last, k the k-th distinct rest (kept beside) |
//! | 16 + 2k, 17 + 2k | counter k: state, delta-of-delta of the present |
//!
//! Arithmetic wraps, so any u64 or i64 round-trips, however it jumps.

use super::bad;
use crate::events::codec::CodecError;
use pco::standalone::{simple_compress, simple_decompress};
use pco::ChunkConfig;

/// pco's compression level for batches packed on the write path (`Effort::Inline`).
const INLINE_LEVEL: usize = 6;
use rustc_hash::FxHashMap;

const GAUGES: usize = 4;
const FIXED: usize = 16;

/// Per-stream memory of the values the residuals are taken against.
#[derive(Default, Clone)]
struct StreamState {
    seq: u64,
    timestamp: Dod,
    gauges: [Option<u64>; GAUGES],
    qp_errors: Dod,
    counters: Vec<Dod>,
    /// Index of the stream's last rest in the segment's table.
    rest: Option<u32>,
}

/// A value and its last delta, for delta-of-delta residuals.
#[derive(Default, Clone, Copy)]
struct Dod {
    value: i64,
    delta: i64,
}

impl Dod {
    fn residual(&mut self, v: i64) -> i64 {
        let delta = v.wrapping_sub(self.value);
        let r = delta.wrapping_sub(self.delta);
        *self = Dod { value: v, delta };
        r
    }

    fn value(&mut self, r: i64) -> i64 {
        let delta = self.delta.wrapping_add(r);
        let value = self.value.wrapping_add(delta);
        *self = Dod { value, delta };
        value
    }
}

fn state_of(streams: &mut Vec<StreamState>, code: u32, counters: usize) -> &mut StreamState {
    let i = code as usize;
    if i >= streams.len() {
        streams.resize(
            i + 1,
            StreamState {
                counters: vec![Dod::default(); counters],
                ..StreamState::default()
            },
        );
    }
    &mut streams[i]
}

/// Compressed columns, and the distinct rests in order.
pub(super) type Finished = (Vec<Vec<u8>>, Vec<Vec<u8>>);

pub(super) struct Writer {
    streams: Vec<StreamState>,
    counters: usize,
    prev_code: i64,
    prev_recorded: i64,
    ints: Vec<Vec<i64>>,
    offsets: Vec<u64>,
    states: Vec<Vec<u32>>,
    floats: Vec<Vec<f64>>,
    rests: FxHashMap<Vec<u8>, u32>,
}

/// Where each column's values go: (ints, states) by column number.
enum Slot {
    Int(usize),
    State(usize),
}

fn slot(column: usize) -> Option<Slot> {
    Some(match column {
        0 => Slot::Int(0),
        2 => Slot::Int(1),
        3 => Slot::Int(2),
        4 => Slot::Int(3),
        5..=8 => Slot::State(column - 5),
        13 => Slot::State(4),
        14 => Slot::Int(4),
        15 => Slot::State(5),
        c if c >= FIXED && (c - FIXED).is_multiple_of(2) => Slot::State(6 + (c - FIXED) / 2),
        c if c >= FIXED => Slot::Int(5 + (c - FIXED) / 2),
        _ => return None,
    })
}

fn columns(counters: usize) -> usize {
    FIXED + 2 * counters
}

impl Writer {
    pub(super) fn new(counters: usize) -> Writer {
        Writer {
            streams: Vec::new(),
            counters,
            prev_code: -1,
            prev_recorded: 0,
            ints: vec![Vec::new(); 5 + counters],
            offsets: Vec::new(),
            states: vec![Vec::new(); 6 + counters],
            floats: vec![Vec::new(); GAUGES],
            rests: FxHashMap::default(),
        }
    }

    fn stream(&mut self, code: u32) -> &mut StreamState {
        state_of(&mut self.streams, code, self.counters)
    }

    pub(super) fn event(&mut self, code: u32, gap: u64, seq: u64, recorded_at_ms: i64) {
        self.ints[0].push((code as i64).wrapping_sub(self.prev_code).wrapping_sub(1));
        self.prev_code = code as i64;
        self.offsets.push(gap);
        let s = self.stream(code);
        let r = seq.wrapping_sub(s.seq).wrapping_sub(1) as i64;
        s.seq = seq;
        self.ints[1].push(r);
        self.ints[2].push(recorded_at_ms.wrapping_sub(self.prev_recorded));
        self.prev_recorded = recorded_at_ms;
    }

    pub(super) fn timestamp(&mut self, code: u32, ms: i64) {
        let r = self.stream(code).timestamp.residual(ms);
        self.ints[3].push(r);
    }

    pub(super) fn gauge(&mut self, code: u32, g: usize, value: Option<f64>) {
        let s = self.stream(code);
        let state = match value {
            None => 0,
            Some(v) if s.gauges[g] == Some(v.to_bits()) => 1,
            Some(v) => {
                s.gauges[g] = Some(v.to_bits());
                self.floats[g].push(v);
                2
            }
        };
        self.states[g].push(state);
    }

    pub(super) fn qp_errors(&mut self, code: u32, value: Option<u64>) {
        let r = value.map(|v| self.stream(code).qp_errors.residual(v as i64));
        self.states[4].push(r.is_some() as u32);
        self.ints[4].extend(r);
    }

    pub(super) fn counter(&mut self, code: u32, k: usize, value: Option<u64>) {
        let r = value.map(|v| self.stream(code).counters[k].residual(v as i64));
        self.states[6 + k].push(r.is_some() as u32);
        self.ints[5 + k].extend(r);
    }

    /// The non-numeric rest of the event (each distinct one is kept once).
    pub(super) fn rest(&mut self, code: u32, bytes: Vec<u8>) {
        let next = self.rests.len() as u32;
        let index = *self.rests.entry(bytes).or_insert(next);
        let s = self.stream(code);
        let state = match s.rest == Some(index) {
            true => 0,
            false => index + 1,
        };
        s.rest = Some(index);
        self.states[5].push(state);
    }

    /// The columns, and the distinct rests in order.
    pub(super) fn finish(self, effort: super::Effort) -> Result<Finished, CodecError> {
        let config = match effort {
            super::Effort::Archive => ChunkConfig::default(),
            // The residuals are deltas already: no search for another delta encoding, and a
            // lighter search for bins.
            super::Effort::Inline => ChunkConfig::default()
                .with_compression_level(INLINE_LEVEL)
                .with_delta_spec(pco::DeltaSpec::NoOp),
        };
        let pco = |e: pco::errors::PcoError| bad(&format!("pco: {e}"));
        let mut out = Vec::with_capacity(columns(self.counters));
        for c in 0..columns(self.counters) {
            out.push(
                match (c, slot(c)) {
                    (_, Some(Slot::Int(i))) => simple_compress(&self.ints[i], &config),
                    (_, Some(Slot::State(i))) => simple_compress(&self.states[i], &config),
                    (1, None) => simple_compress(&self.offsets, &config),
                    (c, None) => simple_compress(&self.floats[c - 9], &config),
                }
                .map_err(pco)?,
            );
        }
        let mut rests: Vec<(Vec<u8>, u32)> = self.rests.into_iter().collect();
        rests.sort_unstable_by_key(|(_, i)| *i);
        Ok((out, rests.into_iter().map(|(b, _)| b).collect()))
    }
}

/// A decompressed column read front to back.
struct Col<T> {
    values: Vec<T>,
    at: usize,
}

impl<T: Copy> Col<T> {
    fn next(&mut self, column: usize) -> Result<T, CodecError> {
        let v = self.values.get(self.at).copied();
        self.at += 1;
        v.ok_or_else(|| bad(&format!("column {column} ends early")))
    }
}

pub(super) struct Reader {
    streams: Vec<StreamState>,
    counters: usize,
    prev_code: i64,
    prev_recorded: i64,
    ints: Vec<Col<i64>>,
    offsets: Col<u64>,
    states: Vec<Col<u32>>,
    floats: Vec<Col<f64>>,
}

impl Reader {
    pub(super) fn new(
        columns_bytes: Vec<Vec<u8>>,
        counters: usize,
        n: usize,
    ) -> Result<Reader, CodecError> {
        if columns_bytes.len() != columns(counters) {
            return Err(bad(&format!(
                "{} columns for {counters} counters",
                columns_bytes.len()
            )));
        }
        let pco = |c: usize| move |e: pco::errors::PcoError| bad(&format!("column {c}: {e}"));
        let mut r = Reader {
            streams: Vec::new(),
            counters,
            prev_code: -1,
            prev_recorded: 0,
            ints: (0..5 + counters).map(|_| col(Vec::new())).collect(),
            offsets: col(Vec::new()),
            states: (0..6 + counters).map(|_| col(Vec::new())).collect(),
            floats: (0..GAUGES).map(|_| col(Vec::new())).collect(),
        };
        for (c, bytes) in columns_bytes.iter().enumerate() {
            match (c, slot(c)) {
                (_, Some(Slot::Int(i))) => {
                    r.ints[i] = col(simple_decompress(bytes).map_err(pco(c))?)
                }
                (_, Some(Slot::State(i))) => {
                    let states: Vec<u32> = simple_decompress(bytes).map_err(pco(c))?;
                    if states.len() != n {
                        return Err(bad(&format!(
                            "column {c} has {} of {n} events",
                            states.len()
                        )));
                    }
                    r.states[i] = col(states);
                }
                (1, None) => r.offsets = col(simple_decompress(bytes).map_err(pco(c))?),
                (c, None) => r.floats[c - 9] = col(simple_decompress(bytes).map_err(pco(c))?),
            }
        }
        Ok(r)
    }

    fn stream(&mut self, code: u32) -> &mut StreamState {
        state_of(&mut self.streams, code, self.counters)
    }

    /// The next event's stream code (below `streams`), offset gap, seq and recorded_at_ms.
    pub(super) fn event(&mut self, streams: usize) -> Result<(u32, u64, u64, i64), CodecError> {
        let code = self
            .prev_code
            .wrapping_add(1)
            .wrapping_add(self.ints[0].next(0)?);
        if !(0..streams as i64).contains(&code) {
            return Err(bad(&format!("stream code {code} of {streams} streams")));
        }
        self.prev_code = code;
        let gap = self.offsets.next(1)?;
        let r = self.ints[1].next(2)?;
        let s = self.stream(code as u32);
        s.seq = s.seq.wrapping_add(1).wrapping_add(r as u64);
        let seq = s.seq;
        self.prev_recorded = self.prev_recorded.wrapping_add(self.ints[2].next(3)?);
        Ok((code as u32, gap, seq, self.prev_recorded))
    }

    pub(super) fn timestamp(&mut self, code: u32) -> Result<i64, CodecError> {
        let r = self.ints[3].next(4)?;
        Ok(self.stream(code).timestamp.value(r))
    }

    pub(super) fn gauge(&mut self, code: u32, g: usize) -> Result<Option<f64>, CodecError> {
        match self.states[g].next(5 + g)? {
            0 => Ok(None),
            1 => self.stream(code).gauges[g]
                .map(|bits| Some(f64::from_bits(bits)))
                .ok_or_else(|| bad(&format!("gauge {g} repeats a value it never had"))),
            2 => {
                let v = self.floats[g].next(9 + g)?;
                self.stream(code).gauges[g] = Some(v.to_bits());
                Ok(Some(v))
            }
            s => Err(bad(&format!("gauge {g} state {s}"))),
        }
    }

    pub(super) fn qp_errors(&mut self, code: u32) -> Result<Option<u64>, CodecError> {
        if self.states[4].next(13)? == 0 {
            return Ok(None);
        }
        let r = self.ints[4].next(14)?;
        Ok(Some(self.stream(code).qp_errors.value(r) as u64))
    }

    pub(super) fn counter(&mut self, code: u32, k: usize) -> Result<Option<u64>, CodecError> {
        if self.states[6 + k].next(FIXED + 2 * k)? == 0 {
            return Ok(None);
        }
        let r = self.ints[5 + k].next(FIXED + 2 * k + 1)?;
        Ok(Some(self.stream(code).counters[k].value(r) as u64))
    }

    /// The index of the event's rest in the segment's table (of `rests`).
    pub(super) fn rest(&mut self, code: u32, rests: usize) -> Result<usize, CodecError> {
        let state = self.states[5].next(15)?;
        let s = self.stream(code);
        let index = match state {
            0 => s
                .rest
                .ok_or_else(|| bad("a stream repeats a rest it never had"))?,
            k => k - 1,
        };
        if index as usize >= rests {
            return Err(bad(&format!("rest {index} of {rests}")));
        }
        s.rest = Some(index);
        Ok(index as usize)
    }
}

fn col<T>(values: Vec<T>) -> Col<T> {
    Col { values, at: 0 }
}
