//! The scrubber against a slow, obviously correct whole-input reference, named adversarial
//! cases, and property tests over random secrets, texts and chunkings.

#![allow(clippy::cast_possible_truncation, clippy::format_collect)]

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE};
use proptest::prelude::*;

use super::reference::reference;
use super::*;

fn set(secrets: &[(&str, &[u8])]) -> PatternSet {
    PatternSet::build(secrets.iter().copied()).expect("builds")
}

/// Streams `input` split at `cuts`, then finishes.
fn stream(set: &PatternSet, input: &[u8], cuts: &[usize]) -> Vec<u8> {
    let mut s = set.scrubber(MaskStyle::Name);
    let mut out = Vec::new();
    let mut last = 0;
    for &cut in cuts.iter().filter(|&&c| c <= input.len()) {
        let cut = cut.max(last);
        out.extend(s.push(&input[last..cut]));
        last = cut;
    }
    out.extend(s.push(&input[last..]));
    out.extend(s.finish());
    out
}

fn whole(secrets: &[(&str, &[u8])], input: &[u8]) -> String {
    let got = stream(&set(secrets), input, &[]);
    assert_eq!(
        got,
        reference(secrets, input, MaskStyle::Name),
        "stream ≠ reference"
    );
    String::from_utf8_lossy(&got).into_owned()
}

/// Every way of cutting `input` into two or three pieces gives the reference output.
fn all_splits(secrets: &[(&str, &[u8])], input: &[u8]) -> String {
    let want = reference(secrets, input, MaskStyle::Name);
    let set = set(secrets);
    for a in 0..=input.len() {
        assert_eq!(stream(&set, input, &[a]), want, "split at {a}");
        for b in a..=input.len() {
            assert_eq!(stream(&set, input, &[a, b]), want, "split at {a},{b}");
        }
    }
    let bytewise: Vec<usize> = (0..=input.len()).collect();
    assert_eq!(stream(&set, input, &bytewise), want, "byte by byte");
    String::from_utf8_lossy(&want).into_owned()
}

const TOKEN: &[u8] = b"sk-live-4f9a8b7c6d5e";

// Named adversarial cases -----------------------------------------------------------------

#[test]
fn secret_split_across_writes() {
    let out = all_splits(&[("TOKEN", TOKEN)], b"key=sk-live-4f9a8b7c6d5e done");
    assert_eq!(out, "key=[MASKED:TOKEN] done");
}

#[test]
fn secret_in_the_last_bytes_before_eof() {
    assert_eq!(
        all_splits(&[("TOKEN", TOKEN)], b"x sk-live-4f9a8b7c6d5e"),
        "x [MASKED:TOKEN]"
    );
    // A prefix of the secret at end of stream: over 3 bytes is masked as partial...
    assert_eq!(
        all_splits(&[("TOKEN", TOKEN)], b"x sk-live-4f"),
        "x [MASKED:TOKEN:partial]"
    );
    // ...3 bytes or fewer are released raw.
    assert_eq!(all_splits(&[("TOKEN", TOKEN)], b"x sk-"), "x sk-");
}

#[test]
fn prompt_ending_in_a_prefix_of_a_secret() {
    let set = set(&[("TOKEN", TOKEN)]);
    let mut s = set.scrubber(MaskStyle::Name);
    // Only the bytes that could start the secret are held; the prompt is out at once.
    assert_eq!(s.push(b"Password: sk-li"), b"Password: ");
    assert_eq!(s.held(), 5);
    // Idle: the held tail is over 3 bytes, so it becomes a partial marker...
    assert_eq!(s.idle(), b"[MASKED:TOKEN:partial]");
    // ...and if the secret then continues, the rest is still masked as its own region.
    assert_eq!(s.push(b"ve-4f9a8b7c6d5e\n"), b"[MASKED:TOKEN:partial]\n");
    assert_eq!(s.finish(), b"");
    // A short held tail is released raw at idle.
    let mut s = set.scrubber(MaskStyle::Name);
    assert_eq!(s.push(b"$ sk"), b"$ ");
    assert_eq!(s.idle(), b"sk");
    assert_eq!(s.push(b"y is blue\n"), b"y is blue\n");
}

#[test]
fn chunk_without_a_partial_match_is_emitted_whole_by_the_same_push() {
    let set = set(&[("TOKEN", TOKEN)]);
    let mut s = set.scrubber(MaskStyle::Name);
    assert_eq!(s.push(b"hello world\n"), b"hello world\n");
    assert_eq!(s.held(), 0);
    assert_eq!(
        s.push(b"token sk-live-4f9a8b7c6d5e!\n"),
        b"token [MASKED:TOKEN]!\n"
    );
    assert_eq!(s.held(), 0);
    // A secret at the very end of a chunk is complete and nothing longer can follow from it.
    assert_eq!(s.push(b"x sk-live-4f9a8b7c6d5e"), b"x [MASKED:TOKEN]");
    assert_eq!(s.held(), 0);
}

#[test]
fn overlapping_secrets_merge_into_one_region() {
    let secrets: &[(&str, &[u8])] = &[("A", b"abcdefgh12"), ("B", b"gh12345678")];
    assert_eq!(all_splits(secrets, b"<abcdefgh12345678>"), "<[MASKED:A,B]>");
    // First appearance decides the order.
    assert_eq!(all_splits(secrets, b"<xxgh12345678>"), "<xx[MASKED:B]>");
}

#[test]
fn prefix_secrets_merge() {
    let secrets: &[(&str, &[u8])] = &[("LONG", b"prefix-0123-suffix"), ("SHORT", b"prefix-0123")];
    assert_eq!(
        all_splits(secrets, b"a prefix-0123-suffix b"),
        "a [MASKED:LONG,SHORT] b"
    );
    assert_eq!(
        all_splits(secrets, b"a prefix-0123 b"),
        "a [MASKED:SHORT] b"
    );
}

#[test]
fn at_end_of_stream_a_complete_short_secret_is_not_partial() {
    // DESIGN §7: the stream ends on SHORT, which is also a prefix of LONG: nothing can continue,
    // so the region is SHORT's, complete (not `[MASKED:SHORT,LONG:partial]`).
    let secrets: &[(&str, &[u8])] = &[("LONG", b"prefix-0123-suffix"), ("SHORT", b"prefix-0123")];
    assert_eq!(all_splits(secrets, b"a prefix-0123"), "a [MASKED:SHORT]");
    // Held bytes past a complete occurrence are still a partial of the longer one...
    assert_eq!(
        all_splits(secrets, b"a prefix-0123-suf"),
        "a [MASKED:SHORT][MASKED:LONG:partial]"
    );
    // ...unless 3 bytes or fewer (the raw-tail rule).
    assert_eq!(
        all_splits(secrets, b"a prefix-0123-s"),
        "a [MASKED:SHORT]-s"
    );
    // A held prefix with a complete occurrence inside it: the bytes before it are partial too.
    let secrets: &[(&str, &[u8])] = &[("LONG", b"xxxx-inner-secret-more"), ("IN", b"inner-secret")];
    assert_eq!(
        all_splits(secrets, b"> xxxx-inner-secret"),
        "> [MASKED:LONG:partial][MASKED:IN]"
    );
}

#[test]
fn wrapped_base64_and_hex_are_masked_across_line_breaks() {
    let value = b"a PEM-ish secret / with \"quotes\" & more: 0123456789";
    let secrets: &[(&str, &[u8])] = &[("K", value)];
    let b64 = STANDARD.encode(value);
    let hex: String = value.iter().map(|b| format!("{b:02x}")).collect();
    for (form, width, eol) in [
        (&b64, 76, "\n"),
        (&b64, 64, "\n"),
        (&b64, 7, "\r\n"),
        (&b64, 1, "\n"),
        (&hex, 60, "\n"),
        (&hex, 3, "\r\n"),
    ] {
        let wrapped: Vec<u8> = form
            .as_bytes()
            .chunks(width)
            .collect::<Vec<_>>()
            .join(eol.as_bytes());
        let mut input = b"begin\n".to_vec();
        input.extend_from_slice(&wrapped);
        input.extend_from_slice(b"\nend\n");
        let out = whole(secrets, &input);
        // The region covers the line breaks inside it; what is left is the padding (base64's
        // last characters are not fully the value's) and the framing.
        let left = out
            .strip_prefix("begin\n[MASKED:K]")
            .unwrap_or_else(|| panic!("{width} {eol:?}: {out:?}"));
        assert!(
            left.len() <= "AA==\nend\n".len() + 2,
            "{width} {eol:?}: {out:?}"
        );
        // Any split of the input gives the same (a few to keep the test quick).
        let set = set(secrets);
        for cut in [1, 7, 77, input.len() / 2, input.len() - 3] {
            assert_eq!(
                stream(&set, &input, &[cut]),
                reference(secrets, &input, MaskStyle::Name)
            );
        }
    }
}

#[test]
fn a_blank_line_or_a_lone_cr_breaks_a_wrapped_form() {
    let value = b"0123456789-secret-value";
    let secrets: &[(&str, &[u8])] = &[("K", value)];
    let hex: String = value.iter().map(|b| format!("{b:02x}")).collect();
    let (head, tail) = hex.split_at(20);
    for gap in ["\n\n", "\r\n\r\n", "\r", "\n\r", " "] {
        let input = format!("{head}{gap}{tail}");
        // Neither half is a whole form: nothing is masked, whatever the chunking.
        assert_eq!(all_splits(secrets, input.as_bytes()), input, "{gap:?}");
    }
    for gap in ["\n", "\r\n"] {
        let input = format!("{head}{gap}{tail}");
        assert_eq!(
            all_splits(secrets, input.as_bytes()),
            "[MASKED:K]",
            "{gap:?}"
        );
    }
}

#[test]
fn line_breaks_keep_the_hold_bounded() {
    // A wrapped form's prefix with a line break after every character, then a long run of
    // line breaks: held bytes stay under the cap, and the prefix is not released raw early.
    let value = b"0123456789-secret-value-long-enough";
    let set = set(&[("K", value.as_slice())]);
    let cap = 2 * set.longest_pattern() + 256;
    let hex: String = value.iter().map(|b| format!("{b:02x}")).collect();
    let mut input = Vec::new();
    for c in hex.bytes().take(hex.len() - 1) {
        input.push(c);
        input.extend_from_slice(b"\r\n");
    }
    input.extend(std::iter::repeat_n(b'\n', 5000));
    let mut s = set.scrubber(MaskStyle::Name);
    let mut out = Vec::new();
    for chunk in input.chunks(5) {
        out.extend(s.push(chunk));
        assert!(s.held() <= cap, "held {} > cap {cap}", s.held());
    }
    out.extend(s.finish());
    assert_eq!(out, reference(&[("K", value)], &input, MaskStyle::Name));
}

#[test]
fn touching_occurrences_stay_separate_and_adjacent_repeats_too() {
    let secrets: &[(&str, &[u8])] = &[("A", b"AAAA1111"), ("B", b"BBBB2222")];
    assert_eq!(
        all_splits(secrets, b"AAAA1111BBBB2222"),
        "[MASKED:A][MASKED:B]"
    );
    assert_eq!(
        all_splits(secrets, b"AAAA1111AAAA1111"),
        "[MASKED:A][MASKED:A]"
    );
    // Self-overlapping repeats merge.
    let secrets: &[(&str, &[u8])] = &[("R", b"abababab")];
    assert_eq!(all_splits(secrets, b"-ababababab-"), "-[MASKED:R]-");
}

#[test]
fn json_escaped_value() {
    let v = b"pa\"ss\\word\nline2";
    let json = serde_json::to_string(std::str::from_utf8(v).expect("utf8")).expect("json");
    let text = format!("{{\"env\":{json}}}");
    assert_eq!(
        whole(&[("V", v)], text.as_bytes()),
        "{\"env\":\"[MASKED:V]\"}"
    );
}

#[test]
fn base64_at_every_offset_with_and_without_padding_inside_longer_text() {
    let v = TOKEN;
    for engine in [&STANDARD, &URL_SAFE] {
        for offset in 0..3usize {
            for tail in 0..3usize {
                let mut plain = b"xyz"[..offset].to_vec();
                plain.extend_from_slice(v);
                plain.extend_from_slice(&b"!?~"[..tail]);
                let encoded = engine.encode(&plain);
                let text = format!("data: QUJD{encoded}\n");
                let out = whole(&[("T", v)], text.as_bytes());
                assert!(
                    out.contains("[MASKED:T]"),
                    "offset {offset}, tail {tail}: {out}"
                );
                let core_chars = &engine.encode(v)[4..20];
                assert!(!out.contains(core_chars), "{out}");
            }
        }
    }
}

#[test]
fn hex_and_percent_encoded() {
    let v: &[u8] = b"p@ss w0rd/with+chars";
    let lower: String = v.iter().map(|b| format!("{b:02x}")).collect();
    let upper = lower.to_uppercase();
    let out = whole(&[("V", v)], format!("{lower} {upper}").as_bytes());
    assert_eq!(out, "[MASKED:V] [MASKED:V]");
    let out = whole(&[("V", v)], b"url?q=p%40ss%20w0rd%2Fwith%2Bchars&x=1");
    assert_eq!(out, "url?q=[MASKED:V]&x=1");
}

#[test]
fn pem_like_multi_line_value() {
    let pem: &[u8] = b"-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\nBKcwggSjAgEAAoIBAQC7\n-----END PRIVATE KEY-----\n";
    // A single long line printed alone is masked; the armour is not.
    let out = whole(
        &[("KEY", pem)],
        b"line: MIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----\n",
    );
    assert_eq!(out, "line: [MASKED:KEY]\n-----END PRIVATE KEY-----\n");
    // Output ending in the value's first line is a prefix of the value: partial at EOF.
    let out = whole(&[("KEY", pem)], b"-----BEGIN PRIVATE KEY-----\n");
    assert_eq!(out, "[MASKED:KEY:partial]");
    // The whole value, and the value with CRLF line ends are masked too.
    let out = whole(&[("KEY", pem)], &[b"k=".as_slice(), pem, b"end"].concat());
    assert_eq!(out, "k=[MASKED:KEY]end");
}

#[test]
fn weak_value_inside_a_word_is_kept_and_as_a_token_is_masked() {
    let secrets: &[(&str, &[u8])] = &[("PIN", b"4321ab")];
    assert_eq!(all_splits(secrets, b"x4321ab 4321abc"), "x4321ab 4321abc");
    assert_eq!(all_splits(secrets, b"pin=4321ab."), "pin=[MASKED:PIN].");
    assert_eq!(all_splits(secrets, b"4321ab"), "[MASKED:PIN]");
    let secrets: &[(&str, &[u8])] = &[("DB_PASS", b"password")];
    assert_eq!(
        all_splits(secrets, b"passwords: password"),
        "passwords: [MASKED:DB_PASS]"
    );
}

#[test]
fn three_byte_value_is_kept_and_reported_for_a_warning() {
    let set = set(&[("SHORT", b"abc"), ("OK", b"abcd")]);
    assert_eq!(set.unmasked(), ["SHORT".to_owned()]);
    assert_eq!(stream(&set, b"abc abcd", &[]), b"abc [MASKED:OK]");
}

#[test]
fn crlf_line_ends() {
    let secrets: &[(&str, &[u8])] = &[("T", b"secret-token-value\r\n")];
    // The value itself and its whitespace-trimmed form are both patterns.
    assert_eq!(
        all_splits(secrets, b"a secret-token-value\r\nb"),
        "a [MASKED:T]b"
    );
    assert_eq!(
        all_splits(secrets, b"a secret-token-value\nb"),
        "a [MASKED:T]\nb"
    );
}

#[test]
fn hold_cap_writes_a_growing_region_and_goes_on_masking() {
    let v = b"abababababababab"; // self-overlapping: "ab" repeated grows one region
    let set = set(&[("R", v)]);
    let mut s = set.scrubber(MaskStyle::Name);
    let cap = 2 * set.longest_pattern() + 256;
    let input = b"ab".repeat(1000);
    let mut out = Vec::new();
    for chunk in input.chunks(7) {
        out.extend(s.push(chunk));
        assert!(s.held() <= cap, "held {} > cap {cap}", s.held());
    }
    out.extend(s.finish());
    let text = String::from_utf8(out).expect("utf8");
    assert!(!text.contains("abab"), "raw bytes released: {text}");
    assert!(text.contains("[MASKED:R:partial]"), "{text}");
}

#[test]
fn mask_styles_and_counts() {
    let secrets: &[(&str, &[u8])] = &[("TOKEN", TOKEN)];
    let set = set(secrets);
    for (style, want) in [
        (MaskStyle::Name, "a [MASKED:TOKEN] b"),
        (MaskStyle::Stars, "a *** b"),
        (MaskStyle::Anon, "a [MASKED] b"),
    ] {
        let mut s = set.scrubber(style);
        let mut out = s.push(b"a sk-live-4f9a8b7c6d5e b");
        out.extend(s.finish());
        assert_eq!(String::from_utf8(out).expect("utf8"), want);
        assert_eq!(
            reference(secrets, b"a sk-live-4f9a8b7c6d5e b", style),
            want.as_bytes()
        );
        assert_eq!(s.counts(), vec![("TOKEN", 1)]);
    }
}

#[test]
fn binary_input_with_nul_and_invalid_utf8_passes_through() {
    let input: Vec<u8> = (0..=255u8).chain([0, 0xff, 0xc3, 0x28, 0]).collect();
    let set = set(&[("TOKEN", TOKEN)]);
    assert_eq!(stream(&set, &input, &[3, 100, 200]), input);
}

#[test]
fn debug_output_holds_no_secret() {
    let set = set(&[("TOKEN", TOKEN)]);
    let mut s = set.scrubber(MaskStyle::Name);
    let _ = s.push(b"sk-live-4f9a");
    let shown = format!("{set:?} {s:?}");
    assert!(!shown.contains("sk-live"), "{shown}");
}

#[test]
fn many_secrets_build_and_scan() {
    let values: Vec<(String, Vec<u8>)> = (0..1000)
        .map(|i| {
            (
                format!("S{i}"),
                format!("value-{i:04}-{:016x}", i * 7_919).into_bytes(),
            )
        })
        .collect();
    let set =
        PatternSet::build(values.iter().map(|(n, v)| (n.as_str(), v.as_slice()))).expect("builds");
    assert!(set.automaton.states() > 10_000);
    let text = [
        b"log: ".as_slice(),
        &values[777].1,
        b" and ",
        &values[3].1,
        b"\n",
    ]
    .concat();
    assert_eq!(
        stream(&set, &text, &[9, 20]),
        b"log: [MASKED:S777] and [MASKED:S3]\n"
    );
}

// Properties ------------------------------------------------------------------------------

/// Secrets from a small alphabet, so that they share prefixes, suffixes and overlap, with the
/// characters every escaping family changes (quotes, backslash, slash, `&`, `<`, space,
/// line breaks, non-ASCII and an astral character).
fn secret_value() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        prop::sample::select("ab01_-= \n'\"\\/&<é😀\r".chars().collect::<Vec<char>>()),
        2..14,
    )
    .prop_map(|chars| chars.into_iter().collect::<String>().into_bytes())
}

/// Every pattern of `value` (each family's forms), with whether it may be wrapped.
fn forms_of(value: &[u8]) -> Vec<(Vec<u8>, bool)> {
    let mut patterns = Vec::new();
    patterns::patterns_of(0, value, &mut patterns);
    patterns
        .iter()
        .map(|p| (p.bytes.to_vec(), p.wrap))
        .collect()
}

/// `form` with `\n` or `\r\n` inserted after the positions in `breaks` (as `base64` wraps).
fn wrapped(form: &[u8], breaks: &[(usize, bool)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(form.len() + 2 * breaks.len());
    for (i, &b) in form.iter().enumerate() {
        out.push(b);
        for &(at, crlf) in breaks {
            if at % form.len().max(1) == i {
                out.extend_from_slice(if crlf { b"\r\n" } else { b"\n" });
            }
        }
    }
    out
}

fn planted_text(values: Vec<Vec<u8>>) -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        3 => prop::collection::vec(prop::sample::select(b"ab01_-= \nxyz\x00\xff\r'\"\\%".to_vec()), 0..8),
        2 => prop::sample::select(values.clone()),
        1 => (prop::sample::select(values.clone()), 1usize..10).prop_map(|(v, cut)| {
            v[..cut.min(v.len())].to_vec()
        }),
        1 => (prop::sample::select(values.clone()), 0usize..3).prop_map(|(v, off)| {
            let mut p = b"QQ"[..off].to_vec();
            p.extend_from_slice(&v);
            STANDARD.encode(p).into_bytes()
        }),
        1 => prop::sample::select(values.clone()).prop_map(|v| {
            v.iter().map(|b| format!("{b:02x}")).collect::<String>().into_bytes()
        }),
        // Any form of any family, whole or cut short, wrapped with line breaks where it may be.
        3 => (
            prop::sample::select(values),
            any::<prop::sample::Index>(),
            prop::collection::vec((0usize..64, any::<bool>()), 0..4),
            prop::option::of(1usize..40),
        )
            .prop_map(|(v, pick, breaks, cut)| {
                let forms = forms_of(&v);
                if forms.is_empty() {
                    return v;
                }
                let (form, wrap) = pick.get(&forms).clone();
                let form = match cut {
                    Some(cut) if cut < form.len() => form[..cut].to_vec(),
                    _ => form,
                };
                if wrap { wrapped(&form, &breaks) } else { form }
            }),
    ];
    prop::collection::vec(piece, 0..12).prop_map(|pieces| pieces.concat())
}

fn case() -> impl Strategy<Value = (Vec<Vec<u8>>, Vec<u8>, Vec<usize>)> {
    prop::collection::vec(secret_value(), 1..4).prop_flat_map(|values| {
        let text = planted_text(values.clone());
        (Just(values), text, prop::collection::vec(0usize..200, 0..8))
    })
}

fn named(values: &[Vec<u8>]) -> Vec<(String, Vec<u8>)> {
    values
        .iter()
        .enumerate()
        .map(|(i, v)| (format!("S{i}"), v.clone()))
        .collect()
}

proptest! {

    #[test]
    fn streaming_equals_reference_for_every_chunking((values, text, mut cuts) in case()) {
        let secrets = named(&values);
        let secrets: Vec<(&str, &[u8])> = secrets.iter().map(|(n, v)| (n.as_str(), v.as_slice())).collect();
        let set = set(&secrets);
        cuts.sort_unstable();
        let want = reference(&secrets, &text, MaskStyle::Name);
        prop_assert_eq!(stream(&set, &text, &cuts), want);
    }

    #[test]
    fn no_strong_secret_survives_even_with_idle((values, text, cuts) in case(), idles in prop::collection::vec(any::<bool>(), 8)) {
        let secrets = named(&values);
        let secrets: Vec<(&str, &[u8])> = secrets.iter().map(|(n, v)| (n.as_str(), v.as_slice())).collect();
        let set = set(&secrets);
        let mut s = set.scrubber(MaskStyle::Stars);
        let mut out = Vec::new();
        let mut last = 0;
        let mut cuts = cuts;
        cuts.sort_unstable();
        for (i, &cut) in cuts.iter().enumerate() {
            let cut = cut.min(text.len()).max(last);
            out.extend(s.push(&text[last..cut]));
            if idles[i % idles.len()] {
                out.extend(s.idle());
            }
            last = cut;
        }
        out.extend(s.push(&text[last..]));
        out.extend(s.finish());
        for (_, v) in &secrets {
            if classify(v) == Class::Strong {
                prop_assert!(!out.windows(v.len()).any(|w| w == *v), "{:?} survived", String::from_utf8_lossy(v));
            }
        }
    }

    #[test]
    fn text_without_secrets_passes_through_byte_identical(
        text in prop::collection::vec(any::<u8>().prop_map(|b| b.to_ascii_lowercase()), 0..400),
        cuts in prop::collection::vec(0usize..400, 0..10),
    ) {
        let set = set(&[("A", b"UPPERCASESECRET1".as_slice()), ("B", b"ONLYCAPS"), ("C", b"WEAK")]);
        let mut cuts = cuts;
        cuts.sort_unstable();
        prop_assert_eq!(stream(&set, &text, &cuts), text);
    }
}
