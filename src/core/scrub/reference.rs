//! A slow, obviously correct whole-input scrubber: DESIGN §7 applied to the entire input at
//! once by brute force. The streaming [`Scrubber`](super::Scrubber) must give the same output
//! for every way of splitting the input (without idle calls and below the hold cap). Used by
//! the property tests and by the fuzz target (feature `reference`); not for production.

#![allow(
    clippy::cast_possible_truncation,
    reason = "test oracle over inputs held in memory"
)]

use super::patterns::{Pattern, is_word, patterns_of};
use super::wrap::project_all;
use super::{MaskStyle, Region, write_marker};

/// `input` scrubbed as a whole, then finished, with the patterns of `secrets`.
///
/// # Panics
/// With more than `u32::MAX` secrets.
#[must_use]
pub fn reference(secrets: &[(&str, &[u8])], input: &[u8], style: MaskStyle) -> Vec<u8> {
    let mut patterns: Vec<Pattern> = Vec::new();
    for (i, (_, value)) in secrets.iter().enumerate() {
        patterns_of(u32::try_from(i).expect("few"), value, &mut patterns);
    }
    let (wrapped, plain): (Vec<&Pattern>, Vec<&Pattern>) = patterns.iter().partition(|p| p.wrap);
    let n = input.len();
    let before_ok = |start: usize| start == 0 || !is_word(input[start - 1]);
    // (start, end, secret, partial)
    let mut occurrences: Vec<(usize, usize, u32, bool)> = Vec::new();
    for p in &plain {
        let len = p.bytes.len();
        for start in 0..=n.saturating_sub(len) {
            if n < len || input[start..start + len] != p.bytes[..] {
                continue;
            }
            let after_ok = start + len == n || !is_word(input[start + len]);
            if !p.weak || (before_ok(start) && after_ok) {
                occurrences.push((start, start + len, p.secret, false));
            }
        }
    }
    // The wrapped forms: in the projection (no `\r`/`\n`), within the pieces between resets,
    // mapped back to raw positions (line breaks inside included).
    let (projected, raw, resets) = project_all(input);
    let mut bounds = vec![0];
    bounds.extend_from_slice(&resets);
    bounds.push(projected.len());
    for piece in bounds.windows(2) {
        let (from, to) = (piece[0], piece[1].max(piece[0]));
        for p in &wrapped {
            let len = p.bytes.len();
            for s in from..=to.saturating_sub(len) {
                if s + len <= to && projected[s..s + len] == p.bytes[..] {
                    occurrences.push((raw[s], raw[s + len - 1] + 1, p.secret, false));
                }
            }
        }
    }
    if let Some((start, secret)) = end_tail(input, &plain, &wrapped) {
        uncovered(start, secret, n, &mut occurrences);
    }
    regions_written(secrets, input, occurrences, style)
}

/// End of stream: the longest held suffix that could still become an occurrence (a proper
/// prefix of a pattern, in the raw stream or after the last reset of the projection): its raw
/// start and the secret it would belong to.
fn end_tail(input: &[u8], plain: &[&Pattern], wrapped: &[&Pattern]) -> Option<(usize, u32)> {
    let n = input.len();
    let before_ok = |start: usize| start == 0 || !is_word(input[start - 1]);
    let (projected, raw, resets) = project_all(input);
    let mut tail: Option<(usize, u32)> = None;
    for depth in (1..=n).rev() {
        let suffix = &input[n - depth..];
        let candidates = plain.iter().filter(|p| {
            p.bytes.len() > depth
                && p.bytes[..depth] == *suffix
                && (!p.weak || before_ok(n - depth))
        });
        if let Some(secret) = candidates.map(|p| p.secret).min() {
            tail = Some((n - depth, secret));
            break;
        }
    }
    let last_piece = resets.last().copied().unwrap_or(0);
    for depth in (1..=projected.len() - last_piece).rev() {
        let suffix = &projected[projected.len() - depth..];
        let candidates = wrapped
            .iter()
            .filter(|p| p.bytes.len() > depth && p.bytes[..depth] == *suffix);
        if let Some(secret) = candidates.map(|p| p.secret).min() {
            let start = raw[projected.len() - depth];
            tail = Some(tail.map_or((start, secret), |t| t.min((start, secret))));
            break;
        }
    }
    tail
}

/// Of the held tail `[start, n)`, the pieces no complete occurrence covers, over 3 bytes, are
/// partial occurrences of `secret`.
fn uncovered(
    start: usize,
    secret: u32,
    n: usize,
    occurrences: &mut Vec<(usize, usize, u32, bool)>,
) {
    let mut covered = vec![false; n];
    for &(s, e, _, _) in occurrences.iter() {
        covered[s..e].fill(true);
    }
    let mut at = start;
    while at < n {
        if covered[at] {
            at += 1;
            continue;
        }
        let from = at;
        while at < n && !covered[at] {
            at += 1;
        }
        if at - from > 3 {
            occurrences.push((from, at, secret, true));
        }
    }
}

/// The input with the occurrences' merged regions written as markers.
fn regions_written(
    secrets: &[(&str, &[u8])],
    input: &[u8],
    mut occurrences: Vec<(usize, usize, u32, bool)>,
    style: MaskStyle,
) -> Vec<u8> {
    occurrences.sort_unstable();
    let mut regions: Vec<Region> = Vec::new();
    for (start, end, secret, partial) in occurrences {
        let start = start as u64;
        let end = end as u64;
        match regions.last_mut() {
            Some(r) if start < r.end => {
                r.end = r.end.max(end);
                r.partial |= partial;
                if !r.names.iter().any(|&(_, s)| s == secret) {
                    r.names.push((start, secret));
                }
            }
            _ => regions.push(Region {
                start,
                end,
                partial,
                names: vec![(start, secret)],
            }),
        }
    }
    let names: Vec<String> = secrets.iter().map(|(n, _)| (*n).to_owned()).collect();
    let mut out = Vec::new();
    let mut cursor = 0usize;
    for r in &regions {
        out.extend_from_slice(&input[cursor..r.start as usize]);
        write_marker(r, style, &names, &mut out);
        cursor = r.end as usize;
    }
    out.extend_from_slice(&input[cursor..]);
    out
}
