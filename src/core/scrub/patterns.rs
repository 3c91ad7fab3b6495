//! The pattern set of DESIGN §7: which byte strings stand for a secret in output.
//!
//! Every pattern is held in a zeroizing buffer; the caller builds the automaton from them and
//! drops them, which wipes them.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
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

/// One pattern: bytes that stand for secret number `secret`.
pub(crate) struct Pattern {
    pub(crate) bytes: Zeroizing<Vec<u8>>,
    pub(crate) secret: u32,
    /// Matched only as a whole token (not preceded or followed by `[A-Za-z0-9_]`).
    pub(crate) weak: bool,
    /// A base64 or hex form: also matched with a line break (`\n`, `\r\n`) between any two of
    /// its characters, as `base64`, PEM and MIME wrap them (DESIGN §7). Never weak.
    pub(crate) wrap: bool,
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

/// Appends the patterns of secret `secret` with value `value` to `out`: for a strong value,
/// each base (the value, and the value trimmed of ASCII whitespace when that differs) in every
/// form of DESIGN §7's nine families, each form once (an alphanumeric token has only its
/// literal, base64 and hex forms: every escaping leaves it as it is).
pub(crate) fn patterns_of(secret: u32, value: &[u8], out: &mut Vec<Pattern>) {
    let first = out.len();
    let class = classify(value);
    let mut push = |bytes: Zeroizing<Vec<u8>>, wrap: bool| {
        // A derived pattern is classed by its own length (a weak value's literal by its class).
        if bytes.len() < MIN_MASKED_LEN {
            return;
        }
        let weak = bytes.len() < STRONG_LEN || class == Class::Weak;
        let wrap = wrap && !weak;
        if let Some(same) = out[first..].iter_mut().find(|p| *p.bytes == *bytes) {
            same.wrap |= wrap;
            return;
        }
        out.push(Pattern {
            bytes,
            secret,
            weak,
            wrap,
        });
    };
    match class {
        Class::Unmasked => {}
        Class::Weak => push(Zeroizing::new(value.to_vec()), false),
        Class::Strong => {
            let trimmed = value.trim_ascii();
            let mut bases = vec![value];
            if trimmed.len() != value.len() {
                bases.push(trimmed);
            }
            for base in bases {
                push(Zeroizing::new(base.to_vec()), false);
                for form in wrappable_forms(base) {
                    push(form, true);
                }
                for form in escaped_forms(base) {
                    push(form, false);
                }
            }
            if value.contains(&b'\n') {
                for line in value.split(|&b| b == b'\n') {
                    let line = line.trim_ascii();
                    if line.len() >= MIN_LINE_LEN && !line.starts_with(b"-----") {
                        push(Zeroizing::new(line.to_vec()), false);
                    }
                }
            }
        }
    }
}

/// Family 2 and 3: base64 (standard and URL-safe, at each byte offset) and hex (both cases),
/// the forms that tools wrap into lines.
fn wrappable_forms(base: &[u8]) -> Vec<Zeroizing<Vec<u8>>> {
    let mut forms = Vec::with_capacity(8);
    for engine in [&STANDARD_NO_PAD, &URL_SAFE_NO_PAD] {
        for offset in 0..3 {
            forms.push(base64_determined(engine, base, offset));
        }
    }
    forms.push(hex(base, b"0123456789abcdef"));
    forms.push(hex(base, b"0123456789ABCDEF"));
    forms
}

/// Families 4 to 9: the escapings programs apply when they print a value inside a URL, a JSON
/// string, a shell command, a language literal, markup or a quoted SQL/YAML string.
fn escaped_forms(base: &[u8]) -> Vec<Zeroizing<Vec<u8>>> {
    let mut forms = vec![
        percent(base, &UNRESERVED, b"0123456789ABCDEF", false),
        percent(base, &UNRESERVED, b"0123456789abcdef", false),
        percent(base, &UNRESERVED_AND_SLASH, b"0123456789ABCDEF", false),
        percent(base, &UNRESERVED, b"0123456789ABCDEF", true),
        percent(base, &FORM_WHATWG, b"0123456789ABCDEF", true),
        shell_single_quoted(base),
        shell_backslashed(base, false),
        shell_backslashed(base, true),
        sql_quoted(base),
    ];
    for quotes in [
        Quotes::Single,
        Quotes::Double,
        Quotes::Both,
        Quotes::Neither,
    ] {
        forms.push(c_escaped(base, quotes));
    }
    for style in ENTITY_STYLES {
        forms.push(entities(base, style));
    }
    if let Ok(text) = std::str::from_utf8(base) {
        let serde = json_serde(text);
        let ascii = json_ascii(text);
        forms.push(slashes_escaped(&serde));
        forms.push(slashes_escaped(&ascii));
        forms.push(json_html_safe(&serde));
        forms.push(serde);
        forms.push(ascii);
    }
    forms
}

/// The base64 characters of `value` placed `offset` bytes into a base64 stream, keeping only
/// the characters whose six bits all come from `value`: neither the neighbours nor the padding
/// change them (`base64`, `openssl base64`, PEM, MIME, JWTs and data URLs).
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

/// Hex, as `xxd -p`, `od`-based dumps, `hexdump` and `bytes.hex()` print it.
fn hex(value: &[u8], digits: &[u8; 16]) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(Vec::with_capacity(value.len() * 2));
    for &b in value {
        out.push(digits[usize::from(b >> 4)]);
        out.push(digits[usize::from(b & 0xf)]);
    }
    out
}

/// Bytes percent-encoding leaves as they are: RFC 3986's unreserved `A-Za-z0-9-._~`.
const UNRESERVED: AsciiSet = AsciiSet::alnum().with(b"-._~");
/// Python's `urllib.parse.quote` default (`safe='/'`): unreserved and `/`.
const UNRESERVED_AND_SLASH: AsciiSet = AsciiSet::alnum().with(b"-._~/");
/// The WHATWG `application/x-www-form-urlencoded` serializer (browsers, Java's `URLEncoder`):
/// `*-._` stay, `~` is encoded.
const FORM_WHATWG: AsciiSet = AsciiSet::alnum().with(b"*-._");

/// A set of ASCII bytes, as a bitmap.
struct AsciiSet([bool; 128]);

impl AsciiSet {
    const fn alnum() -> Self {
        let mut set = [false; 128];
        let mut b: u8 = 0;
        while b < 128 {
            set[b as usize] = b.is_ascii_alphanumeric();
            b += 1;
        }
        Self(set)
    }
    const fn with(mut self, bytes: &[u8]) -> Self {
        let mut i = 0;
        while i < bytes.len() {
            self.0[bytes[i] as usize] = true;
            i += 1;
        }
        self
    }
    fn contains(&self, b: u8) -> bool {
        self.0.get(usize::from(b)).copied().unwrap_or(false)
    }
}

/// Percent-encoding of every byte outside `keep` with `digits` (upper-case: RFC 3986, Python's
/// `quote`, curl; lower-case: some Go and JavaScript encoders), and with `form` the space as `+`
/// (Python's `urllib.parse.quote_plus`, `urlencode`, HTML forms).
fn percent(value: &[u8], keep: &AsciiSet, digits: &[u8; 16], form: bool) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(Vec::with_capacity(value.len() * 3));
    for &b in value {
        if keep.contains(b) {
            out.push(b);
        } else if form && b == b' ' {
            out.push(b'+');
        } else {
            out.extend_from_slice(&[
                b'%',
                digits[usize::from(b >> 4)],
                digits[usize::from(b & 0xf)],
            ]);
        }
    }
    out
}

/// JSON string escaping as `serde_json` (and Python's `json.dumps(..., ensure_ascii=False)`,
/// JavaScript's `JSON.stringify`) writes it: `\"`, `\\`, `\b \f \n \r \t`, other control
/// bytes as `\u00xx`.
fn json_serde(text: &str) -> Zeroizing<Vec<u8>> {
    let quoted = Zeroizing::new(serde_json::to_string(text).unwrap_or_default().into_bytes());
    Zeroizing::new(
        quoted
            .get(1..quoted.len().saturating_sub(1))
            .unwrap_or_default()
            .to_vec(),
    )
}

/// JSON as Python's `json.dumps` writes it by default (`ensure_ascii=True`) and PHP's
/// `json_encode`: every character outside printable ASCII as `\uxxxx` (lower-case hex, a
/// surrogate pair beyond U+FFFF).
fn json_ascii(text: &str) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(Vec::with_capacity(text.len() + 8));
    for c in text.chars() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '\n' => out.extend_from_slice(b"\\n"),
            '\r' => out.extend_from_slice(b"\\r"),
            '\t' => out.extend_from_slice(b"\\t"),
            '\u{8}' => out.extend_from_slice(b"\\b"),
            '\u{c}' => out.extend_from_slice(b"\\f"),
            ' '..='~' => out.push(c as u8),
            _ => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    out.extend_from_slice(format!("\\u{unit:04x}").as_bytes());
                }
            }
        }
    }
    out
}

/// A JSON form with `/` written `\/`, as PHP's `json_encode` does by default.
fn slashes_escaped(json: &[u8]) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(Vec::with_capacity(json.len() + 4));
    for &b in json {
        if b == b'/' {
            out.push(b'\\');
        }
        out.push(b);
    }
    out
}

/// Go's `encoding/json` (HTML-safe by default): the `serde_json` form with `<`, `>`, `&`,
/// U+2028 and U+2029 as `\u003c`, `\u003e`, `\u0026`, `\u2028`, `\u2029`.
fn json_html_safe(serde: &[u8]) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(Vec::with_capacity(serde.len() + 8));
    let mut rest = serde;
    while let Some((&b, tail)) = rest.split_first() {
        match b {
            b'<' => out.extend_from_slice(b"\\u003c"),
            b'>' => out.extend_from_slice(b"\\u003e"),
            b'&' => out.extend_from_slice(b"\\u0026"),
            0xe2 if tail.starts_with(&[0x80, 0xa8]) || tail.starts_with(&[0x80, 0xa9]) => {
                let last = if tail[1] == 0xa8 { b'8' } else { b'9' };
                out.extend_from_slice(b"\\u202");
                out.push(last);
                rest = &tail[2..];
                continue;
            }
            _ => out.push(b),
        }
        rest = tail;
    }
    out
}

/// Inside bash's single quotes, as `set -x` traces and `printf %q`-free quoting print it:
/// `'` as `'\''`.
fn shell_single_quoted(value: &[u8]) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(Vec::with_capacity(value.len() + 8));
    for &b in value {
        if b == b'\'' {
            out.extend_from_slice(b"'\\''");
        } else {
            out.push(b);
        }
    }
    out
}

/// Backslash before every ASCII character outside `A-Za-z0-9_./,:=@%+-`, as bash's
/// `printf %q` writes a word (bytes beyond ASCII stay, as bash leaves them in a UTF-8 locale).
/// `bash_5` follows bash 5 exactly: `,` is escaped too, and `~` and `#` only at the start.
fn shell_backslashed(value: &[u8], bash_5: bool) -> Zeroizing<Vec<u8>> {
    const KEEP: AsciiSet = AsciiSet::alnum().with(b"_./,:=@%+-");
    let mut out = Zeroizing::new(Vec::with_capacity(value.len() * 2));
    for (i, &b) in value.iter().enumerate() {
        let escape = if bash_5 {
            match b {
                b',' => true,
                b'~' | b'#' => i == 0,
                _ => b.is_ascii() && !KEEP.contains(b),
            }
        } else {
            b.is_ascii() && !KEEP.contains(b)
        };
        if escape {
            out.push(b'\\');
        }
        out.push(b);
    }
    out
}

/// Which quotes a language literal escapes: Python's `repr` escapes `'` when the value holds
/// both kinds (and neither otherwise), Go's `%q` and Rust's `{:?}` escape `"`.
#[derive(Clone, Copy)]
enum Quotes {
    Single,
    Double,
    Both,
    Neither,
}

/// A string as a language literal prints it (Python's `repr`, Go's `%q`, Rust's `{:?}` for
/// ASCII): `\\`, the quotes of `quotes`, `\n \r \t`, other control bytes `\xNN`; other bytes
/// (non-ASCII included) as they are.
fn c_escaped(value: &[u8], quotes: Quotes) -> Zeroizing<Vec<u8>> {
    let (single, double) = match quotes {
        Quotes::Single => (true, false),
        Quotes::Double => (false, true),
        Quotes::Both => (true, true),
        Quotes::Neither => (false, false),
    };
    let mut out = Zeroizing::new(Vec::with_capacity(value.len() + 8));
    for &b in value {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\'' if single => out.extend_from_slice(b"\\'"),
            b'"' if double => out.extend_from_slice(b"\\\""),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0..0x20 | 0x7f => out.extend_from_slice(format!("\\x{b:02x}").as_bytes()),
            _ => out.push(b),
        }
    }
    out
}

/// How markup escapes `"` and `'` (`&`, `<`, `>` are always `&amp; &lt; &gt;`): Python's
/// `html.escape`, Go's `html.EscapeString` and templates, XML, PHP's `htmlspecialchars`, and
/// text content (quotes left as they are).
const ENTITY_STYLES: [(&[u8], &[u8]); 5] = [
    (b"&quot;", b"&#x27;"),
    (b"&#34;", b"&#39;"),
    (b"&quot;", b"&apos;"),
    (b"&quot;", b"&#039;"),
    (b"\"", b"'"),
];

/// XML/HTML entities for `& < > " '`, with the quote entities of `style`.
fn entities(value: &[u8], (double, single): (&[u8], &[u8])) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(Vec::with_capacity(value.len() + 8));
    for &b in value {
        match b {
            b'&' => out.extend_from_slice(b"&amp;"),
            b'<' => out.extend_from_slice(b"&lt;"),
            b'>' => out.extend_from_slice(b"&gt;"),
            b'"' => out.extend_from_slice(double),
            b'\'' => out.extend_from_slice(single),
            _ => out.push(b),
        }
    }
    out
}

/// `'` doubled, as SQL string literals and YAML single-quoted scalars write it.
fn sql_quoted(value: &[u8]) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(Vec::with_capacity(value.len() + 4));
    for &b in value {
        out.push(b);
        if b == b'\'' {
            out.push(b'\'');
        }
    }
    out
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
