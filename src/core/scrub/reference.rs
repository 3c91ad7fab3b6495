//! A slow, obviously correct whole-input scrubber: DESIGN §7 applied to the entire input at
//! once by brute force. The streaming [`Scrubber`](super::Scrubber) must give the same output
//! for every way of splitting the input (without idle calls and below the hold cap). Used by
//! the property tests and by the fuzz target (feature `reference`); not for production.

#![allow(
    clippy::cast_possible_truncation,
    reason = "test oracle over inputs held in memory"
)]

use super::patterns::{Pattern, is_word, patterns_of};
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
    let n = input.len();
    let before_ok = |start: usize| start == 0 || !is_word(input[start - 1]);
    // (start, end, secret, partial)
    let mut occurrences: Vec<(usize, usize, u32, bool)> = Vec::new();
    for p in &patterns {
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
    // End of stream: the longest suffix that is a proper prefix of a pattern that could still
    // match; over 3 bytes it is masked as partial.
    for depth in (1..=n).rev() {
        let suffix = &input[n - depth..];
        let candidates = patterns.iter().filter(|p| {
            p.bytes.len() > depth
                && p.bytes[..depth] == *suffix
                && (!p.weak || before_ok(n - depth))
        });
        if let Some(secret) = candidates.map(|p| p.secret).min() {
            if depth > 3 {
                occurrences.push((n - depth, n, secret, true));
            }
            break;
        }
    }
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
