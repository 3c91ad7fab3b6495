//! The projection that lets base64 and hex forms match across line breaks (DESIGN §7: `base64`
//! wraps at 76 columns, PEM at 64, MIME with `\r\n`).
//!
//! The wrappable patterns run on a second automaton over a *projected* stream: the raw stream
//! without its `\r` and `\n` bytes. A single line break (`\n` or `\r\n`) between two characters
//! thus becomes invisible. Any other run of `\r`/`\n` bytes (a blank line, a lone `\r`) is a
//! *reset*: the projected automaton starts over there, so no occurrence spans it, and a held
//! tail stays bounded (at most one line break, two bytes, between two projected bytes: a live
//! tail of `d` projected bytes spans at most `3d` raw bytes).
//!
//! [`Projection`] keeps the map back to raw positions for the last few projected bytes: an
//! occurrence over projected `[s, e)` is the raw region from the raw position of byte `s` to
//! just after the raw position of byte `e - 1`, line breaks inside included.

use std::collections::VecDeque;

use zeroize::Zeroize;

/// The line-break run being read, not yet decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Run {
    /// Not in a run.
    None,
    /// `\n`: one line break so far.
    Lf,
    /// `\r`: a line break if `\n` follows.
    Cr,
    /// `\r\n`: one line break so far.
    CrLf,
    /// Anything longer or a lone `\r`: a reset (already applied).
    Broken,
}

/// The projected stream's state across chunks.
#[derive(Debug)]
pub(crate) struct Projection {
    run: Run,
    /// Projected bytes so far.
    len: u64,
    /// Raw bytes removed before projected index `.0`, in total `.1`; increasing in both.
    shifts: VecDeque<(u64, u64)>,
    /// How far back positions are still asked for (the longest wrappable pattern).
    window: u64,
    /// The current chunk's projected bytes (wiped after each chunk).
    pub(crate) bytes: Vec<u8>,
    /// Indices into `bytes` where the automaton starts over (before that byte; `bytes.len()`
    /// for the end of the chunk).
    pub(crate) resets: Vec<usize>,
}

impl Projection {
    pub(crate) fn new(window: usize) -> Self {
        Self {
            run: Run::None,
            len: 0,
            shifts: VecDeque::from([(0, 0)]),
            window: window as u64 + 1,
            bytes: Vec::new(),
            resets: Vec::new(),
        }
    }

    /// Projected bytes so far.
    pub(crate) const fn len(&self) -> u64 {
        self.len
    }

    /// The raw position of projected byte `k` (one of the last `window` ones).
    pub(crate) fn raw(&self, k: u64) -> u64 {
        let shift = self
            .shifts
            .iter()
            .rev()
            .find(|&&(at, _)| at <= k)
            .map_or(0, |&(_, shift)| shift);
        k + shift
    }

    /// Projects the next raw chunk into [`Self::bytes`] and [`Self::resets`]; returns the
    /// projected index of `bytes[0]`.
    pub(crate) fn feed(&mut self, input: &[u8]) -> u64 {
        let first = self.len;
        self.clear();
        reserve_wiping(&mut self.bytes, input.len());
        let mut rest = input;
        while let Some(at) = memchr::memchr2(b'\n', b'\r', rest) {
            self.take(&rest[..at]);
            self.line_break(rest[at]);
            rest = &rest[at + 1..];
        }
        self.take(rest);
        first
    }

    /// End of stream: decides a run still open; true when it resets (a lone `\r`; a line
    /// break at the end changes nothing).
    pub(crate) fn end_run(&mut self) -> bool {
        let reset = self.run == Run::Cr;
        self.run = Run::None;
        reset
    }

    /// Everything starts over, for a new stream.
    pub(crate) fn restart(&mut self) {
        self.run = Run::None;
        self.len = 0;
        self.shifts = VecDeque::from([(0, 0)]);
        self.clear();
    }

    /// Wipes the chunk's projected bytes (copies of the input) and forgets positions no
    /// longer asked for.
    pub(crate) fn clear(&mut self) {
        self.bytes.zeroize();
        self.resets.clear();
        let keep_from = self.len.saturating_sub(self.window);
        while self.shifts.len() > 1 && self.shifts[1].0 <= keep_from {
            self.shifts.pop_front();
        }
    }

    /// Bytes that are not line breaks: a pending lone `\r` resets first.
    fn take(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        if self.run == Run::Cr {
            self.resets.push(self.bytes.len());
        }
        self.run = Run::None;
        self.bytes.extend_from_slice(bytes);
        self.len += bytes.len() as u64;
    }

    /// A `\r` or `\n`: removed from the projection; a run that is no single line break resets.
    fn line_break(&mut self, b: u8) {
        let (run, reset) = match (self.run, b) {
            (Run::None, b'\n') => (Run::Lf, false),
            (Run::None, _) => (Run::Cr, false),
            (Run::Cr, b'\n') => (Run::CrLf, false),
            (Run::Broken, _) => (Run::Broken, false),
            (Run::Lf | Run::Cr | Run::CrLf, _) => (Run::Broken, true),
        };
        if reset {
            self.resets.push(self.bytes.len());
        }
        self.run = run;
        let shift = self.shifts.back().map_or(0, |&(_, s)| s) + 1;
        match self.shifts.back_mut() {
            Some(last) if last.0 == self.len => last.1 = shift,
            _ => self.shifts.push_back((self.len, shift)),
        }
    }
}

/// Makes room for `more` bytes; a block that must move is wiped before it is freed.
fn reserve_wiping(buf: &mut Vec<u8>, more: usize) {
    if buf.capacity() - buf.len() < more {
        let mut grown = Vec::with_capacity((buf.len() + more).next_power_of_two());
        grown.extend_from_slice(buf);
        buf.zeroize();
        *buf = grown;
    }
}

/// The whole-input projection, for the reference oracle: the projected bytes, each one's raw
/// position, and the reset points (indices into the projected bytes).
#[cfg(any(test, feature = "reference"))]
pub(crate) fn project_all(input: &[u8]) -> (Vec<u8>, Vec<usize>, Vec<usize>) {
    let mut bytes = Vec::new();
    let mut raw = Vec::new();
    let mut resets = Vec::new();
    let mut i = 0;
    while i < input.len() {
        if matches!(input[i], b'\r' | b'\n') {
            let start = i;
            while i < input.len() && matches!(input[i], b'\r' | b'\n') {
                i += 1;
            }
            let run = &input[start..i];
            if run != b"\n" && run != b"\r\n" {
                resets.push(bytes.len());
            }
        } else {
            bytes.push(input[i]);
            raw.push(i);
            i += 1;
        }
    }
    (bytes, raw, resets)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `input` in pieces of `step` bytes; returns the projected bytes and the resets as
    /// projected indices.
    fn streamed(input: &[u8], step: usize) -> (Vec<u8>, Vec<u64>, Vec<u64>) {
        let mut p = Projection::new(1 << 20);
        let (mut bytes, mut resets, mut raw) = (Vec::new(), Vec::new(), Vec::new());
        for chunk in input.chunks(step) {
            let first = p.feed(chunk);
            resets.extend(p.resets.iter().map(|&r| first + r as u64));
            bytes.extend_from_slice(&p.bytes);
            for k in first..p.len() {
                raw.push(p.raw(k));
            }
        }
        if p.end_run() {
            resets.push(bytes.len() as u64);
        }
        resets.dedup();
        (bytes, resets, raw)
    }

    #[test]
    fn single_line_breaks_vanish_and_other_runs_reset() {
        let input = b"ab\ncd\r\nef\n\ngh\rij\r";
        let (bytes, resets, raw) = streamed(input, input.len());
        assert_eq!(bytes, b"abcdefghij");
        assert_eq!(
            resets,
            [6, 8, 10],
            "a blank line, a lone \\r, a lone \\r at the end"
        );
        assert_eq!(raw, [0, 1, 3, 4, 7, 8, 11, 12, 14, 15]);
        // The same, however the input is cut.
        for step in 1..input.len() {
            assert_eq!(
                streamed(input, step),
                (bytes.clone(), resets.clone(), raw.clone()),
                "{step}"
            );
        }
        let (all, all_raw, all_resets) = project_all(input);
        assert_eq!(all, bytes);
        assert_eq!(all_raw.iter().map(|&r| r as u64).collect::<Vec<_>>(), raw);
        assert_eq!(
            all_resets.iter().map(|&r| r as u64).collect::<Vec<_>>(),
            resets
        );
    }

    #[test]
    fn old_positions_are_forgotten_but_the_window_stays_exact() {
        let mut p = Projection::new(12);
        let line = b"0123456789\n";
        for _ in 0..1000 {
            p.feed(line);
        }
        p.clear();
        assert!(p.shifts.len() <= 3, "{}", p.shifts.len());
        let last = p.len() - 1;
        assert_eq!(p.raw(last), 1000 * 11 - 2);
        assert_eq!(p.raw(last - 8), 1000 * 11 - 2 - 8, "the same line");
        assert_eq!(p.raw(last - 10), 1000 * 11 - 2 - 11, "one line break back");
    }
}
