//! The scrubber (DESIGN §7): masks secret values, and their common encodings, in a byte stream.
//!
//! Pure and synchronous: [`Scrubber::push`] takes the next bytes and returns what may be written
//! now, [`Scrubber::idle`] is called by the driver after 25 ms without input, and
//! [`Scrubber::finish`] at end of stream. It never sees a file descriptor or a clock.
//!
//! Hand-written because no crate has these semantics: every occurrence of every pattern is
//! found (overlaps included), overlapping occurrences merge into one masked region while
//! touching ones stay apart, and the output depends only on the concatenated input — never on
//! how it was split — while holding back only the bytes that could still start or continue an
//! occurrence. A chunk with nothing pending at its end is returned whole by the same `push`.
//!
//! Positions below are absolute byte offsets in the stream. `emitted` is how far output has
//! been decided; `buf` holds the input from `base` (up to 16 bytes before `emitted`, kept to
//! check a weak pattern's left boundary) to the current position.

mod automaton;
mod patterns;
#[cfg(any(test, feature = "reference"))]
pub mod reference;
mod wrap;

use std::fmt;
use std::sync::Arc;

use zeroize::Zeroize;

pub use automaton::BuildError;
use automaton::{Automaton, OUT};
pub use patterns::{Class, MIN_LINE_LEN, MIN_MASKED_LEN, STRONG_LEN, classify};
use patterns::{Pattern, is_word};
use wrap::Projection;

/// Bytes of context kept before `emitted` (longer than any weak pattern).
const CONTEXT: u64 = 16;
/// A held tail at most this long is released raw by `idle` and `finish`.
const RAW_TAIL: usize = 3;

/// How a masked region is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MaskStyle {
    /// `[MASKED:NAME]`, `[MASKED:A,B]`, `[MASKED:NAME:partial]`.
    #[default]
    Name,
    /// `***`.
    Stars,
    /// `[MASKED]`.
    Anon,
}

/// The compiled patterns of a set of secrets. Build once, then make a [`Scrubber`] per stream.
#[derive(Clone)]
pub struct PatternSet {
    /// Every pattern but the wrappable ones, over the raw stream.
    automaton: Arc<Automaton>,
    /// The base64 and hex forms, over the projected stream ([`wrap`]); `None` when there are
    /// none.
    wrapped: Option<Arc<Automaton>>,
    names: Arc<[String]>,
    unmasked: Vec<String>,
}

impl fmt::Debug for PatternSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PatternSet")
            .field("secrets", &self.names)
            .field("unmasked", &self.unmasked)
            .finish_non_exhaustive()
    }
}

/// A pattern set whose patterns are derived and checked but whose automata are not built yet
/// ([`PatternSet::prepare`]). Its derived patterns live in zeroizing buffers, wiped when it is
/// built or dropped.
pub struct PendingSet {
    patterns: Vec<Pattern>,
    names: Vec<String>,
    unmasked: Vec<String>,
}

impl fmt::Debug for PendingSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PendingSet")
            .field("secrets", &self.names)
            .field("unmasked", &self.unmasked)
            .finish_non_exhaustive()
    }
}

impl PendingSet {
    /// Names of the secrets too short to mask (under 4 bytes): the launcher warns about each.
    #[must_use]
    pub fn unmasked(&self) -> &[String] {
        &self.unmasked
    }

    /// Builds the automata: the plain patterns over the raw stream, the wrappable base64 and
    /// hex forms over its projection. The automata keep transitions, not plaintext.
    #[must_use]
    pub fn build(self) -> PatternSet {
        let (wrappable, plain): (Vec<Pattern>, Vec<Pattern>) =
            self.patterns.into_iter().partition(|p| p.wrap);
        let automaton = Automaton::build(&plain);
        let wrapped = (!wrappable.is_empty()).then(|| Arc::new(Automaton::build(&wrappable)));
        drop((plain, wrappable));
        PatternSet {
            automaton: Arc::new(automaton),
            wrapped,
            names: self.names.into(),
            unmasked: self.unmasked,
        }
    }
}

impl PatternSet {
    /// Builds the pattern set of `secrets` (name, value): [`PatternSet::prepare`], then
    /// [`PendingSet::build`].
    ///
    /// # Errors
    /// [`BuildError`] if the patterns are too large; the caller must then fail closed.
    pub fn build<'a, I>(secrets: I) -> Result<Self, BuildError>
    where
        I: IntoIterator<Item = (&'a str, &'a [u8])>,
    {
        Self::prepare(secrets).map(PendingSet::build)
    }

    /// Derives the patterns of `secrets` (name, value) and checks their size: everything that
    /// can fail. Building the automata ([`PendingSet::build`]) cannot, so the launcher builds
    /// them while the command starts, knowing already that masking will work.
    ///
    /// # Errors
    /// [`BuildError`] if the patterns are too large; the caller must then fail closed.
    pub fn prepare<'a, I>(secrets: I) -> Result<PendingSet, BuildError>
    where
        I: IntoIterator<Item = (&'a str, &'a [u8])>,
    {
        let mut names = Vec::new();
        let mut unmasked = Vec::new();
        let mut patterns: Vec<Pattern> = Vec::new();
        for (name, value) in secrets {
            let index = u32::try_from(names.len()).map_err(|_| BuildError::TooLarge {
                bytes: usize::MAX,
                max: automaton::MAX_PATTERN_BYTES,
            })?;
            names.push(name.to_owned());
            if classify(value) == Class::Unmasked {
                unmasked.push(name.to_owned());
            }
            patterns::patterns_of(index, value, &mut patterns);
        }
        let total: usize = patterns.iter().map(|p| p.bytes.len()).sum();
        if total > automaton::MAX_PATTERN_BYTES {
            return Err(BuildError::TooLarge {
                bytes: total,
                max: automaton::MAX_PATTERN_BYTES,
            });
        }
        Ok(PendingSet {
            patterns,
            names,
            unmasked,
        })
    }

    /// Names of the secrets too short to mask (under 4 bytes): the launcher warns about each.
    #[must_use]
    pub fn unmasked(&self) -> &[String] {
        &self.unmasked
    }

    /// The secrets' names, in the order given.
    #[must_use]
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// The longest pattern, as the raw bytes one occurrence can span: a wrapped form may hold
    /// a line break (up to two bytes) between any two of its characters. At most twice this
    /// plus 256 bytes are ever held (DESIGN §7 hold cap).
    #[must_use]
    pub fn longest_pattern(&self) -> usize {
        self.automaton
            .longest()
            .max(self.wrapped.as_ref().map_or(0, |w| 3 * w.longest()))
    }

    /// A scrubber for one stream.
    #[must_use]
    pub fn scrubber(&self, style: MaskStyle) -> Scrubber {
        Scrubber::new(self.clone(), style)
    }
}

/// A masked region not yet written.
#[derive(Debug)]
struct Region {
    start: u64,
    end: u64,
    partial: bool,
    /// (first start, secret) for each secret in the region.
    names: Vec<(u64, u32)>,
}

/// A weak occurrence waiting for its right boundary.
#[derive(Debug, Clone, Copy)]
struct Pending {
    start: u64,
    end: u64,
    secret: u32,
}

/// How `settle` treats the held tail.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Tail {
    /// End of `push`: hold what may still match.
    Hold,
    /// `idle`: release a short tail raw, mask a longer one as partial.
    Idle,
    /// `finish`: as idle, after confirming pending weak matches at end of stream.
    Finish,
}

/// The streaming scrubber of one output stream.
pub struct Scrubber {
    set: PatternSet,
    style: MaskStyle,
    state: u32,
    pos: u64,
    emitted: u64,
    base: u64,
    buf: Vec<u8>,
    regions: Vec<Region>,
    pending: Vec<Pending>,
    counts: Vec<u64>,
    region_cap: u64,
    /// Reused for the matches found at one position.
    scratch: Vec<(u64, u32, bool)>,
    /// The wrapped forms' automaton state, over the projected stream.
    wrap_state: u32,
    projection: Projection,
    /// The current chunk's wrapped occurrences `(end, start, secret)` in raw positions, in the
    /// order of their ends, and how many were added already.
    wrapped_found: Vec<(u64, u64, u32)>,
    wrapped_added: usize,
}

impl fmt::Debug for Scrubber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scrubber")
            .field("style", &self.style)
            .field("position", &self.pos)
            .field("held", &self.held())
            .finish_non_exhaustive()
    }
}

impl Scrubber {
    /// A scrubber over `set` writing markers in `style`.
    #[must_use]
    pub fn new(set: PatternSet, style: MaskStyle) -> Self {
        let counts = vec![0; set.names.len()];
        let region_cap = set.longest_pattern() as u64 + 256;
        let window = set.wrapped.as_ref().map_or(0, |w| w.longest());
        Self {
            set,
            style,
            state: Automaton::start(),
            pos: 0,
            emitted: 0,
            base: 0,
            buf: Vec::new(),
            regions: Vec::new(),
            pending: Vec::new(),
            counts,
            region_cap,
            scratch: Vec::new(),
            wrap_state: Automaton::start(),
            projection: Projection::new(window),
            wrapped_found: Vec::new(),
            wrapped_added: 0,
        }
    }

    /// Scrubs the next bytes of the stream; returns what may be written now.
    #[must_use]
    pub fn push(&mut self, input: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(input.len() + 32);
        self.push_into(input, &mut out);
        out
    }

    /// As [`Scrubber::push`], appending to `out` (no allocation when `out` has room).
    pub fn push_into(&mut self, input: &[u8], out: &mut Vec<u8>) {
        let automaton = Arc::clone(&self.set.automaton);
        append_wiping(&mut self.buf, input);
        let start = self.pos;
        // The wrapped forms first (their occurrences are added below in the order of their
        // ends, among the others: `add` needs ends in order).
        self.scan_wrapped(input, start);
        let mut state = self.state;
        let mut i = 0;
        while i < input.len() {
            if self.pending.is_empty() {
                // Fast path: skip what cannot start a pattern, then run to the next event.
                if state == Automaton::start() {
                    i = automaton.skip(input, i);
                }
                (state, i) = automaton.run(state, input, i);
            } else {
                // The byte after a weak match decides it.
                self.pos = start + i as u64;
                self.add_wrapped(self.pos, out);
                self.resolve_pending(!is_word(input[i]), out);
                state = automaton.next(state, input[i]);
                i += 1;
            }
            if state & OUT != 0 {
                self.pos = start + i as u64;
                self.add_wrapped(self.pos, out);
                self.on_match(&automaton, state, out);
            }
        }
        self.pos = start + input.len() as u64;
        self.add_wrapped(self.pos, out);
        self.state = state;
        self.settle(Tail::Hold, out);
    }

    /// Runs the wrapped forms' automaton over the projection of `input` (raw position `start`),
    /// collecting their occurrences in raw positions.
    fn scan_wrapped(&mut self, input: &[u8], start: u64) {
        self.wrapped_found.clear();
        self.wrapped_added = 0;
        let Some(automaton) = self.set.wrapped.clone() else {
            return;
        };
        let first = self.projection.feed(input);
        let bytes = std::mem::take(&mut self.projection.bytes);
        let resets = std::mem::take(&mut self.projection.resets);
        let mut state = self.wrap_state;
        let mut i = 0;
        // Where the run of base64/hex characters being read ends (see below).
        let mut run_end = 0;
        let mut next_reset = resets.iter().copied().peekable();
        while i < bytes.len() || next_reset.peek().is_some() {
            let segment_end = next_reset.peek().copied().unwrap_or(bytes.len());
            while i < segment_end {
                if state == Automaton::start() {
                    if automaton.skips_most() {
                        i = automaton.skip(&bytes[..segment_end], i);
                    } else if i >= run_end {
                        // Too many patterns for the skip table: a byte no wrapped form holds
                        // returns the automaton to its start, so the text is a series of runs
                        // of base64/hex characters, and a run shorter than every pattern,
                        // closed before the chunk ends, cannot hold an occurrence: it is
                        // passed over (most words of a log are).
                        while i < segment_end && !automaton.uses(bytes[i]) {
                            i += 1;
                        }
                        run_end = bytes[i..segment_end]
                            .iter()
                            .position(|&b| !automaton.uses(b))
                            .map_or(segment_end, |n| i + n);
                        if run_end - i < automaton.shortest() && run_end < bytes.len() {
                            i = run_end;
                            continue;
                        }
                    }
                }
                (state, i) = automaton.run(state, &bytes[..segment_end], i);
                if state & OUT != 0 {
                    let end = first + i as u64;
                    let raw_end = self.projection.raw(end - 1) + 1;
                    automaton.for_each_match(state, |p| {
                        let raw_start = self.projection.raw(end - u64::from(p.len));
                        self.wrapped_found.push((raw_end, raw_start, p.secret));
                    });
                }
            }
            if next_reset.next().is_some() {
                state = Automaton::start();
            }
        }
        self.wrap_state = state;
        self.projection.bytes = bytes;
        self.projection.resets = resets;
        self.projection.clear();
        debug_assert!(
            self.wrapped_found
                .iter()
                .all(|&(e, s, _)| s < e && e <= start + input.len() as u64)
        );
    }

    /// Adds the wrapped occurrences that end at or before `upto`.
    fn add_wrapped(&mut self, upto: u64, out: &mut Vec<u8>) {
        while let Some(&(end, start, secret)) = self.wrapped_found.get(self.wrapped_added) {
            if end > upto {
                break;
            }
            self.wrapped_added += 1;
            self.add(start, end, secret, false, out);
        }
    }

    /// Called after a quiet spell: releases the held tail (raw if at most 3 bytes, else as a
    /// partial marker). Matching state is kept: if a secret continues, the rest is masked.
    #[must_use]
    pub fn idle(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        self.settle(Tail::Idle, &mut out);
        out
    }

    /// End of stream: writes everything still held and makes the scrubber ready for a new
    /// stream (the masked counts are kept).
    #[must_use]
    pub fn finish(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        if self.projection.end_run() {
            // A lone `\r` at the end breaks a wrapped form like any other byte.
            self.wrap_state = Automaton::start();
        }
        self.settle(Tail::Finish, &mut out);
        self.state = Automaton::start();
        self.wrap_state = Automaton::start();
        self.projection.restart();
        self.pos = 0;
        self.emitted = 0;
        self.base = 0;
        self.buf.zeroize();
        self.pending.clear();
        out
    }

    /// Bytes currently held back.
    #[must_use]
    pub fn held(&self) -> usize {
        usize::try_from(self.pos - self.emitted).unwrap_or(usize::MAX)
    }

    /// How many masked regions named each secret so far, by secret name.
    #[must_use]
    pub fn counts(&self) -> Vec<(&str, u64)> {
        self.set
            .names
            .iter()
            .map(String::as_str)
            .zip(self.counts.iter().copied())
            .collect()
    }

    fn byte_at(&self, at: u64) -> u8 {
        self.buf[usize::try_from(at - self.base).expect("held bytes fit in memory")]
    }

    /// Whether a weak pattern may start at `start`: the byte before it is not a token byte.
    fn boundary_ok(&self, start: u64) -> bool {
        start == 0 || !is_word(self.byte_at(start - 1))
    }

    fn on_match(&mut self, automaton: &Automaton, state: u32, out: &mut Vec<u8>) {
        let pos = self.pos;
        let mut found = std::mem::take(&mut self.scratch);
        automaton.for_each_match(state, |p| {
            found.push((pos - u64::from(p.len), p.secret, p.weak));
        });
        // Longest first: the merged region's start is settled before the cap check.
        found.sort_unstable();
        for &(start, secret, weak) in &found {
            if !weak {
                self.add(start, pos, secret, false, out);
            } else if self.boundary_ok(start) {
                self.pending.push(Pending {
                    start,
                    end: pos,
                    secret,
                });
            }
        }
        found.clear();
        self.scratch = found;
    }

    /// The byte after pending weak matches arrived (or the stream ended): keep them if it is a
    /// boundary.
    fn resolve_pending(&mut self, boundary: bool, out: &mut Vec<u8>) {
        let pending = std::mem::take(&mut self.pending);
        if boundary {
            for p in &pending {
                self.add(p.start, p.end, p.secret, false, out);
            }
        }
    }

    /// Records an occurrence `[start, end)` of `secret`, merging it with the regions it
    /// overlaps. Ends arrive in non-decreasing order, so those are at the back of the list.
    fn add(&mut self, start: u64, end: u64, secret: u32, partial: bool, out: &mut Vec<u8>) {
        if end <= self.emitted {
            return; // already written as part of an earlier marker
        }
        // Bytes before `emitted` were already masked (idle, cap): the rest is its own region.
        let (start, partial) = if start < self.emitted {
            (self.emitted, true)
        } else {
            (start, partial)
        };
        let mut region = Region {
            start,
            end,
            partial,
            names: vec![(start, secret)],
        };
        while let Some(last) = self.regions.pop_if(|r| r.end > region.start) {
            region.start = region.start.min(last.start);
            region.end = region.end.max(last.end);
            region.partial |= last.partial;
            for (first, s) in last.names {
                match region.names.iter_mut().find(|(_, t)| *t == s) {
                    Some(entry) => entry.0 = entry.0.min(first),
                    None => region.names.push((first, s)),
                }
            }
        }
        let too_long = region.end - region.start > self.region_cap;
        if too_long {
            region.partial = true;
        }
        let region_end = region.end;
        self.regions.push(region);
        if too_long {
            // Hold cap: write the growing region's marker now; matching goes on.
            self.emit_upto(region_end, out);
        }
    }

    fn settle(&mut self, tail: Tail, out: &mut Vec<u8>) {
        if tail == Tail::Finish {
            self.resolve_pending(true, out);
        }
        let live = self.live_tail(tail != Tail::Finish);
        match tail {
            Tail::Hold => {
                let hold_from = live.map_or(self.pos, |(start, _)| start);
                let hold_from = hold_from.max(self.emitted);
                let open = self
                    .regions
                    .iter()
                    .find(|r| r.end > hold_from)
                    .map(|r| r.start);
                self.emit_upto(open.map_or(hold_from, |s| s.min(hold_from)), out);
            }
            Tail::Idle => {
                if let Some((start, secret)) = live.filter(|&(s, _)| self.pos - s > RAW_TAIL as u64)
                {
                    self.add(start, self.pos, secret, true, out);
                }
                self.emit_upto(self.pos, out);
            }
            Tail::Finish => {
                // Nothing can continue: complete occurrences stay ordinary regions, and only
                // the held bytes none of them covers are marked partial (DESIGN §7).
                if let Some((start, secret)) = live {
                    self.mark_uncovered(start.max(self.emitted), secret);
                }
                self.emit_upto(self.pos, out);
            }
        }
    }

    /// The longest held suffix that may still become an occurrence, over both automata: its
    /// raw start and the secret it would belong to. `complete_weak` counts a complete weak
    /// pattern still waiting for its right boundary.
    fn live_tail(&self, complete_weak: bool) -> Option<(u64, u32)> {
        let plain = self
            .set
            .automaton
            .live_tail(self.state, complete_weak, |depth| {
                self.boundary_ok(self.pos - depth as u64)
            })
            .map(|(depth, secret)| (self.pos - depth as u64, secret));
        let wrapped = self.set.wrapped.as_ref().and_then(|w| {
            w.live_tail(self.wrap_state, false, |_| true)
                .map(|(depth, secret)| {
                    let first = self.projection.len() - depth as u64;
                    (self.projection.raw(first), secret)
                })
        });
        match (plain, wrapped) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// At end of stream: each piece of `[start, pos)` that no region covers, over 3 bytes, is a
    /// partial region of `secret` (regions never overlap, so the pieces are their own).
    fn mark_uncovered(&mut self, start: u64, secret: u32) {
        let mut pieces = Vec::new();
        let mut cursor = start;
        for r in self.regions.iter().filter(|r| r.end > start) {
            if r.start > cursor {
                pieces.push((cursor, r.start));
            }
            cursor = cursor.max(r.end);
        }
        if cursor < self.pos {
            pieces.push((cursor, self.pos));
        }
        for (from, to) in pieces {
            if to - from > RAW_TAIL as u64 {
                let at = self.regions.partition_point(|r| r.start < from);
                self.regions.insert(
                    at,
                    Region {
                        start: from,
                        end: to,
                        partial: true,
                        names: vec![(from, secret)],
                    },
                );
            }
        }
    }

    /// Writes the input up to `upto`, each region before it as its marker.
    fn emit_upto(&mut self, upto: u64, out: &mut Vec<u8>) {
        let mut cursor = self.emitted;
        let mut done = 0;
        for region in self.regions.iter().take_while(|r| r.start < upto) {
            out.extend_from_slice(self.slice(cursor, region.start));
            write_marker(region, self.style, &self.set.names, out);
            for &(_, s) in &region.names {
                self.counts[s as usize] += 1;
            }
            cursor = region.end;
            done += 1;
        }
        self.regions.drain(..done);
        if cursor < upto {
            out.extend_from_slice(self.slice(cursor, upto));
            cursor = upto;
        }
        self.emitted = self.emitted.max(cursor);
        let keep_from = self.emitted.saturating_sub(CONTEXT).max(self.base);
        let drop = usize::try_from(keep_from - self.base).expect("held bytes fit in memory");
        if drop > 0 {
            // Not `drain`: it would leave the moved bytes' old copies in the spare capacity,
            // and those may be a secret. Move, then wipe what is vacated.
            let len = self.buf.len();
            self.buf.copy_within(drop.., 0);
            self.buf[len - drop..].zeroize();
            self.buf.truncate(len - drop);
            self.base = keep_from;
        }
    }

    fn slice(&self, from: u64, to: u64) -> &[u8] {
        let at = |p: u64| usize::try_from(p - self.base).expect("held bytes fit in memory");
        &self.buf[at(from)..at(to)]
    }
}

/// Appends `input` to `buf`; when `buf` must grow, its old block is wiped before it is freed
/// (a plain reallocation would free a copy of whatever secret it held).
fn append_wiping(buf: &mut Vec<u8>, input: &[u8]) {
    if buf.capacity() - buf.len() < input.len() {
        let mut grown = Vec::with_capacity((buf.len() + input.len()).next_power_of_two());
        grown.extend_from_slice(buf);
        buf.zeroize();
        *buf = grown;
    }
    buf.extend_from_slice(input);
}

fn write_marker(region: &Region, style: MaskStyle, names: &[String], out: &mut Vec<u8>) {
    match style {
        MaskStyle::Stars => out.extend_from_slice(b"***"),
        MaskStyle::Anon => out.extend_from_slice(b"[MASKED]"),
        MaskStyle::Name => {
            let mut order = region.names.clone();
            order.sort_unstable();
            out.extend_from_slice(b"[MASKED:");
            for (i, (_, s)) in order.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(names[*s as usize].as_bytes());
            }
            if region.partial {
                out.extend_from_slice(b":partial");
            }
            out.push(b']');
        }
    }
}

impl Drop for Scrubber {
    fn drop(&mut self) {
        // Held bytes may be part of a secret.
        self.buf.zeroize();
    }
}

#[cfg(test)]
mod tests;
