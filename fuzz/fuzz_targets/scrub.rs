//! Streaming scrubber against the whole-input reference: for any secrets, text and chunking,
//! the outputs must be equal. Run: `cargo fuzz run scrub` (from the repository root).
//!
//! Input layout: byte 0 picks the number of secrets (1–4); each secret is a length byte
//! (0–24) and that many bytes; the next byte is a chunk size seed; the rest is the text.

#![no_main]

use latch::core::scrub::reference::reference;
use latch::core::scrub::{MaskStyle, PatternSet};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&count, mut rest)) = data.split_first() else { return };
    let mut secrets: Vec<(String, Vec<u8>)> = Vec::new();
    for i in 0..usize::from(count % 4) + 1 {
        let Some((&len, tail)) = rest.split_first() else { return };
        let len = usize::from(len % 25).min(tail.len());
        secrets.push((format!("S{i}"), tail[..len].to_vec()));
        rest = &tail[len..];
    }
    let Some((&seed, text)) = rest.split_first() else { return };
    // Stay below the hold cap (2 × longest + 256), where the reference does not apply.
    let text = &text[..text.len().min(256)];
    let pairs: Vec<(&str, &[u8])> = secrets.iter().map(|(n, v)| (n.as_str(), v.as_slice())).collect();
    let set = PatternSet::build(pairs.iter().copied()).expect("small sets always build");
    let mut scrubber = set.scrubber(MaskStyle::Name);
    let mut out = Vec::new();
    let mut step = usize::from(seed % 17) + 1;
    let mut at = 0;
    while at < text.len() {
        let end = (at + step).min(text.len());
        out.extend(scrubber.push(&text[at..end]));
        at = end;
        step = step * 7 % 17 + 1;
    }
    out.extend(scrubber.finish());
    assert_eq!(out, reference(&pairs, text, MaskStyle::Name));
});
