//! Scrubber throughput and build time (DESIGN §7 targets: ≥ 150 MB/s on one core with 1,000
//! secrets and all their variants; ≥ 1 GB/s with no match and ≤ 20 secrets; building the
//! automaton for 1,000 secrets ≤ 200 ms). A plain copy of the same bytes is measured in the
//! same run as the baseline. Run: `cargo bench --bench scrub`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use latch::core::scrub::{MaskStyle, PatternSet};

/// A deterministic generator (no RNG crate needed for bench data).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[usize::try_from(self.next()).expect("fits") % items.len()]
    }
}

const ALNUM: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

fn secrets(n: usize, seed: u64) -> Vec<(String, Vec<u8>)> {
    let mut rng = Lcg(seed);
    (0..n)
        .map(|i| {
            let value: Vec<u8> = (0..32).map(|_| *rng.pick(ALNUM)).collect();
            (format!("SECRET_{i}"), value)
        })
        .collect()
}

/// 4 MiB of log-like text; with `plant`, one secret (or its base64) every ~8 KiB.
fn text(secrets: &[(String, Vec<u8>)], plant: bool) -> Vec<u8> {
    use base64::Engine;
    let words: &[&[u8]] = &[
        b"INFO",
        b"request",
        b"GET",
        b"/api/v1/items",
        b"200",
        b"took",
        b"12ms",
        b"user=42",
        b"the",
        b"agent",
        b"tool_call",
        b"{\"path\":\"src/main.rs\"}",
        b"WARN",
        b"retrying",
        b"connection",
        b"2026-11-22T16:00:00Z",
        b"ok",
        b"done",
        b"compiling",
        b"serde",
    ];
    let mut rng = Lcg(7);
    let mut out = Vec::with_capacity(4 << 20);
    let mut next_plant = 8192;
    while out.len() < 4 << 20 {
        out.extend_from_slice(rng.pick::<&[u8]>(words));
        out.push(if rng.next().is_multiple_of(12) {
            b'\n'
        } else {
            b' '
        });
        if plant && out.len() > next_plant {
            let (_, v) = rng.pick(secrets);
            if rng.next().is_multiple_of(2) {
                out.extend_from_slice(v);
            } else {
                out.extend_from_slice(
                    base64::engine::general_purpose::STANDARD
                        .encode(v)
                        .as_bytes(),
                );
            }
            out.push(b'\n');
            next_plant += 8192;
        }
    }
    out
}

/// Values with spaces, quotes, slashes, `&`, `<` and non-ASCII, so that every family of
/// DESIGN §7 has forms of its own (about 30 patterns a value instead of 9).
fn rich_secrets(n: usize, seed: u64) -> Vec<(String, Vec<u8>)> {
    let alphabet: Vec<char> =
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 \"'/\\&<é"
            .chars()
            .collect();
    let mut rng = Lcg(seed);
    (0..n)
        .map(|i| {
            let value: String = (0..28).map(|_| *rng.pick(&alphabet)).collect();
            (format!("SECRET_{i}"), value.into_bytes())
        })
        .collect()
}

/// 4 MiB that stress the automata: `kind` 0 is dense base64 wrapped at 76 columns (as
/// `base64` prints a file), 1 dense hex wrapped at 60 (`xxd -p`), 2 near misses: prefixes of
/// the secrets' literal, base64 and hex forms, each cut one byte short, back to back.
fn adversarial(secrets: &[(String, Vec<u8>)], kind: u8) -> Vec<u8> {
    use base64::Engine;
    let mut rng = Lcg(11);
    let mut out = Vec::with_capacity((4 << 20) + 4096);
    match kind {
        0 | 1 => {
            let (alphabet, width): (&[u8], usize) = if kind == 0 {
                (
                    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/",
                    76,
                )
            } else {
                (b"0123456789abcdef", 60)
            };
            while out.len() < 4 << 20 {
                for _ in 0..width {
                    out.push(*rng.pick(alphabet));
                }
                out.push(b'\n');
            }
        }
        _ => {
            while out.len() < 4 << 20 {
                let (_, v) = rng.pick(secrets);
                let b64 = base64::engine::general_purpose::STANDARD
                    .encode(v)
                    .into_bytes();
                let hex: Vec<u8> = v
                    .iter()
                    .flat_map(|b| format!("{b:02x}").into_bytes())
                    .collect();
                for form in [v.as_slice(), &b64, &hex] {
                    out.extend_from_slice(&form[..form.len() - 1]);
                }
            }
        }
    }
    out
}

fn build(secrets: &[(String, Vec<u8>)]) -> PatternSet {
    PatternSet::build(secrets.iter().map(|(n, v)| (n.as_str(), v.as_slice()))).expect("builds")
}

fn scrub_all(set: &PatternSet, text: &[u8]) -> usize {
    let mut s = set.scrubber(MaskStyle::Name);
    let mut out = Vec::with_capacity(70_000);
    let mut total = 0;
    for chunk in text.chunks(64 * 1024) {
        out.clear();
        s.push_into(chunk, &mut out);
        total += out.len();
    }
    total + s.finish().len()
}

fn throughput(c: &mut Criterion) {
    let mut group = c.benchmark_group("scan");
    group
        .measurement_time(Duration::from_secs(4))
        .sample_size(10);
    let base_secrets = secrets(20, 1);
    let baseline_text = text(&base_secrets, false);
    group.throughput(Throughput::Bytes(baseline_text.len() as u64));
    group.bench_function("baseline_copy", |b| {
        b.iter(|| {
            let mut out = Vec::with_capacity(70_000);
            let mut total = 0;
            for chunk in baseline_text.chunks(64 * 1024) {
                out.clear();
                out.extend_from_slice(black_box(chunk));
                total += out.len();
            }
            total
        });
    });
    for n in [10usize, 20] {
        let s = secrets(n, 1);
        let set = build(&s);
        let t = text(&s, false);
        group.bench_function(format!("no_match_{n}_secrets"), |b| {
            b.iter(|| scrub_all(&set, black_box(&t)));
        });
    }
    for n in [10usize, 100, 1000] {
        let s = secrets(n, 1);
        let set = build(&s);
        let t = text(&s, true);
        group.throughput(Throughput::Bytes(t.len() as u64));
        group.bench_function(format!("planted_{n}_secrets"), |b| {
            b.iter(|| scrub_all(&set, black_box(&t)));
        });
    }
    let rich = rich_secrets(1000, 3);
    let set = build(&rich);
    let t = text(&rich, true);
    group.throughput(Throughput::Bytes(t.len() as u64));
    group.bench_function("planted_1000_rich_secrets", |b| {
        b.iter(|| scrub_all(&set, black_box(&t)));
    });
    let rich = rich_secrets(100, 4);
    let set = build(&rich);
    for (kind, name) in [(0, "dense_base64"), (1, "dense_hex"), (2, "near_misses")] {
        let t = adversarial(&rich, kind);
        group.throughput(Throughput::Bytes(t.len() as u64));
        group.bench_function(format!("{name}_100_rich_secrets"), |b| {
            b.iter(|| scrub_all(&set, black_box(&t)));
        });
    }
    group.finish();
}

fn build_time(c: &mut Criterion) {
    let mut group = c.benchmark_group("build");
    group
        .measurement_time(Duration::from_secs(5))
        .sample_size(10);
    for n in [10usize, 100, 1000] {
        let s = secrets(n, 2);
        group.bench_function(format!("{n}_secrets"), |b| b.iter(|| build(black_box(&s))));
    }
    let rich = rich_secrets(1000, 5);
    group.bench_function("1000_rich_secrets", |b| b.iter(|| build(black_box(&rich))));
    group.finish();
}

criterion_group!(benches, throughput, build_time);
criterion_main!(benches);
