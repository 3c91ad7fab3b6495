//! The pattern set of DESIGN §7: which byte strings stand for a secret in output.
//!
//! Every pattern is held in a zeroizing buffer; the caller builds the automaton from them and
//! drops them, which wipes them.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_encode};
use zeroize::Zeroizing;

/// Values (and derived patterns) shorter than this are never masked: masking them would reveal
/// them.
pub const MIN_MASKED_LEN: usize = 4;
/// Values shorter than this are weak: matched only as a whole token.
pub const STRONG_LEN: usize = 8;
/// A line of a multi-line value is a pattern of its own from this length.
pub const MIN_LINE_LEN: usize = 16;

/// Values equal (ignoring ASCII case) to one of these are weak whatever their length.
const COMMON_WORDS: &[&str] = &[
    "true",
    "false",
    "yes",
    "no",
    "on",
    "off",
    "null",
    "none",
    "nil",
    "undefined",
    "localhost",
    "admin",
    "root",
    "test",
    "password",
    "changeme",
    "default",
    "secret",
];

/// Bytes that percent-encoding leaves as they are: `A-Za-z0-9-._~` (RFC 3986 unreserved).
const PERCENT_SET: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// One pattern: bytes that stand for secret number `secret`.
pub(crate) struct Pattern {
    pub(crate) bytes: Zeroizing<Vec<u8>>,
    pub(crate) secret: u32,
    /// Matched only as a whole token (not preceded or followed by `[A-Za-z0-9_]`).
    pub(crate) weak: bool,
}

/// Whether `b` is a token byte for the weak-pattern boundary rule.
pub(crate) const fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// How a value is treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Under 4 bytes: never masked; the launcher warns.
    Unmasked,
    /// Under 8 bytes or a common word: only the literal, only as a whole token.
    Weak,
    /// Everything else: the literal and all its encodings.
    Strong,
}

/// Classes a value by DESIGN §7.
#[must_use]
pub fn classify(value: &[u8]) -> Class {
    if value.len() < MIN_MASKED_LEN {
        Class::Unmasked
    } else if value.len() < STRONG_LEN
        || COMMON_WORDS
            .iter()
            .any(|w| w.as_bytes().eq_ignore_ascii_case(value))
    {
        Class::Weak
    } else {
        Class::Strong
    }
}

/// Appends the patterns of secret `secret` with value `value` to `out`.
pub(crate) fn patterns_of(secret: u32, value: &[u8], out: &mut Vec<Pattern>) {
    let mut push = |bytes: Zeroizing<Vec<u8>>| {
        // A derived pattern is classed by its own length.
        if bytes.len() < MIN_MASKED_LEN {
            return;
        }
        let weak = bytes.len() < STRONG_LEN;
        out.push(Pattern {
            bytes,
            secret,
            weak,
        });
    };
    match classify(value) {
        Class::Unmasked => {}
        Class::Weak => out.push(Pattern {
            bytes: Zeroizing::new(value.to_vec()),
            secret,
            weak: true,
        }),
        Class::Strong => {
            let trimmed = value.trim_ascii();
            let mut bases = vec![value];
            if trimmed.len() != value.len() {
                bases.push(trimmed);
            }
            for base in bases {
                push(Zeroizing::new(base.to_vec()));
                for engine in [&STANDARD_NO_PAD, &URL_SAFE_NO_PAD] {
                    for offset in 0..3 {
                        push(base64_determined(engine, base, offset));
                    }
                }
                push(hex(base, b"0123456789abcdef"));
                push(hex(base, b"0123456789ABCDEF"));
                push(Zeroizing::new(
                    percent_encode(base, PERCENT_SET).to_string().into_bytes(),
                ));
                if let Some(json) = json_escaped(base) {
                    push(json);
                }
            }
            if value.contains(&b'\n') {
                for line in value.split(|&b| b == b'\n') {
                    let line = line.trim_ascii();
                    if line.len() >= MIN_LINE_LEN && !line.starts_with(b"-----") {
                        push(Zeroizing::new(line.to_vec()));
                    }
                }
            }
        }
    }
}

/// The base64 characters of `value` placed `offset` bytes into a base64 stream, keeping only
/// the characters whose six bits all come from `value`: neither the neighbours nor the padding
/// change them.
fn base64_determined(
    engine: &base64::engine::GeneralPurpose,
    value: &[u8],
    offset: usize,
) -> Zeroizing<Vec<u8>> {
    let mut padded = Zeroizing::new(vec![0u8; offset]);
    padded.extend_from_slice(value);
    let encoded = Zeroizing::new(engine.encode(padded.as_slice()).into_bytes());
    // Character c covers bits [6c, 6c+6) of the padded input; the value covers
    // [8·offset, 8·(offset+len)).
    let first = (8 * offset).div_ceil(6);
    let end = (8 * (offset + value.len())) / 6;
    Zeroizing::new(encoded.get(first..end).unwrap_or_default().to_vec())
}

fn hex(value: &[u8], digits: &[u8; 16]) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(Vec::with_capacity(value.len() * 2));
    for &b in value {
        out.push(digits[usize::from(b >> 4)]);
        out.push(digits[usize::from(b & 0xf)]);
    }
    out
}

/// The value as `serde_json` writes it inside a string, without the quotes. `None` for bytes
/// that are not UTF-8 (JSON cannot carry them as they are).
fn json_escaped(value: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    let text = std::str::from_utf8(value).ok()?;
    let quoted = Zeroizing::new(serde_json::to_string(text).ok()?.into_bytes());
    Some(Zeroizing::new(quoted[1..quoted.len() - 1].to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(value: &[u8]) -> Vec<(String, bool)> {
        let mut out = Vec::new();
        patterns_of(0, value, &mut out);
        out.iter()
            .map(|p| (String::from_utf8_lossy(&p.bytes).into_owned(), p.weak))
            .collect()
    }

    #[test]
    fn classes() {
        assert_eq!(classify(b"abc"), Class::Unmasked);
        assert_eq!(classify(b""), Class::Unmasked);
        assert_eq!(classify(b"abcd"), Class::Weak);
        assert_eq!(classify(b"abcdefg"), Class::Weak);
        assert_eq!(classify(b"abcdefgh"), Class::Strong);
        assert_eq!(classify(b"Password"), Class::Weak);
        assert_eq!(classify(b"LOCALHOST"), Class::Weak);
        assert_eq!(classify(b"undefined"), Class::Weak);
        assert_eq!(classify(b"passwords"), Class::Strong);
    }

    #[test]
    fn weak_values_have_only_their_literal() {
        assert_eq!(strings(b"hunter2"), vec![("hunter2".into(), true)]);
        assert_eq!(strings(b"changeme"), vec![("changeme".into(), true)]);
        assert!(strings(b"abc").is_empty());
    }

    #[test]
    fn base64_keeps_only_determined_characters() {
        // "secret-value!" at offset 0: 13 bytes → 17 full characters (104 bits / 6 = 17.3).
        let v = b"secret-value!";
        let full = STANDARD_NO_PAD.encode(v);
        assert_eq!(
            &*base64_determined(&STANDARD_NO_PAD, v, 0),
            &full.as_bytes()[..17]
        );
        // Whatever surrounds the value, the determined characters appear in the encoding.
        for offset in 0..3 {
            let pattern = base64_determined(&STANDARD_NO_PAD, v, offset);
            for prefix in [[0u8, 0], [0xff, 0xfe], [b'x', b'y']] {
                for suffix in [&b""[..], b"a", b"\x00\xff", b"tail!"] {
                    let mut text = prefix[..offset.min(2)].to_vec();
                    text.resize(offset, b'Q');
                    text.extend_from_slice(v);
                    text.extend_from_slice(suffix);
                    let enc = STANDARD.encode(&text);
                    assert!(
                        enc.as_bytes()
                            .windows(pattern.len())
                            .any(|w| w == pattern.as_slice()),
                        "offset {offset}: {} not in {enc}",
                        String::from_utf8_lossy(&pattern)
                    );
                }
            }
        }
    }

    use base64::engine::general_purpose::STANDARD;

    #[test]
    fn strong_value_patterns() {
        let got = strings(b"s3cr3t/Value+x");
        let has = |s: &str| got.iter().any(|(p, _)| p == s);
        assert!(has("s3cr3t/Value+x"));
        assert!(has("7333637233742f56616c75652b78"), "hex lower");
        assert!(has("7333637233742F56616C75652B78"), "hex upper");
        assert!(has("s3cr3t%2FValue%2Bx"), "percent");
        let b64 = STANDARD.encode(b"s3cr3t/Value+x");
        assert!(
            got.iter()
                .any(|(p, _)| b64.starts_with(p.as_str()) && p.len() >= 16),
            "base64"
        );
        assert!(got.iter().all(|(p, weak)| !weak || p.len() < STRONG_LEN));
    }

    #[test]
    fn json_and_trimmed_and_lines() {
        let got = strings(b"line one \"quoted\"\tand more\r\n");
        let has = |s: &str| got.iter().any(|(p, _)| p == s);
        assert!(
            has("line one \\\"quoted\\\"\\tand more\\r\\n"),
            "json: {got:?}"
        );
        assert!(has("line one \"quoted\"\tand more"), "trimmed");
        let pem = b"-----BEGIN KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEF\nshort\n-----END KEY-----\n";
        let got = strings(pem);
        let has = |s: &str| got.iter().any(|(p, _)| p == s);
        assert!(has("MIIEvQIBADANBgkqhkiG9w0BAQEF"), "a long line");
        assert!(!has("short"), "short lines are not patterns of their own");
        assert!(!has("-----BEGIN KEY-----"), "armour reveals nothing");
        assert!(
            strings(b"\x01abcdefgh")
                .iter()
                .any(|(p, _)| p == "\\u0001abcdefgh")
        );
    }
}
