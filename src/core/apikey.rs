//! The API key format of DESIGN §4: generate, parse, check offline, preview, digest.
//!
//! ```text
//! latch_p_ 1a2B3c4D 0123456789abcdefghijABCDEFGHIJ01 0xY9z2
//! prefix   key id   secret (32 base62, ~190 bits)    CRC32 of everything before, base62
//! ```
//!
//! The checksum lets the CLI and secret scanners reject a mistyped or truncated key without a
//! request. The server stores only the key id and the SHA-256 of the whole key and compares
//! digests in constant time. Randomness comes from the caller (the OS RNG at the edge), so this
//! module stays pure and its tests can be deterministic.

use std::fmt;

use rand_core::TryCryptoRng;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// The base62 alphabet, in the order `0-9A-Za-z`.
const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
/// Length of the prefix (`latch_p_`, `latch_t_`).
const PREFIX_LEN: usize = 8;
/// Length of the key id.
pub const KEY_ID_LEN: usize = 8;
/// Length of the random secret part.
const SECRET_LEN: usize = 32;
/// Length of the checksum.
const CHECKSUM_LEN: usize = 6;
/// Total length of a key.
pub const KEY_LEN: usize = PREFIX_LEN + KEY_ID_LEN + SECRET_LEN + CHECKSUM_LEN;
/// Largest multiple of 62 that fits in a byte: bytes at or above it are rejected, so every
/// accepted byte maps to a base62 digit with equal probability (no modulo bias).
const REJECT_FROM: u8 = 248;

/// Whether a key acts as the user who made it or for the team.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyKind {
    /// Acts as its creator (user context).
    Personal,
    /// Not tied to any user (no user context); may be bound to an agent identity.
    Team,
}

impl KeyKind {
    /// The key prefix for this kind.
    #[must_use]
    pub const fn prefix(self) -> &'static str {
        match self {
            Self::Personal => "latch_p_",
            Self::Team => "latch_t_",
        }
    }
}

impl fmt::Display for KeyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Personal => "personal",
            Self::Team => "team",
        })
    }
}

/// Why a string is not a well-formed latch API key. Never quotes the string.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyFormatError {
    /// The string does not start with `latch_p_` or `latch_t_`.
    #[error("this is not a latch API key: it must start with `latch_p_` or `latch_t_`")]
    Prefix,
    /// Wrong length: typically truncated when copied.
    #[error(
        "the API key is {len} characters long; a latch key has {KEY_LEN}: it was probably \
         truncated or mistyped when copied"
    )]
    Length {
        /// Length of the string given.
        len: usize,
    },
    /// A character outside base62 after the prefix.
    #[error("the API key holds a character that is not a letter or digit at position {at}")]
    Character {
        /// Byte offset of the first offending character.
        at: usize,
    },
    /// The checksum does not match the rest of the key.
    #[error("the API key's checksum does not match: it was mistyped or altered when copied")]
    Checksum,
}

/// The public identifier of a key: 8 base62 characters, safe to log and to show.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct KeyId(String);

impl KeyId {
    /// The id as text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for KeyId {
    type Error = KeyFormatError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        if value.len() != KEY_ID_LEN {
            return Err(KeyFormatError::Length { len: value.len() });
        }
        if let Some(at) = value.bytes().position(|b| !b.is_ascii_alphanumeric()) {
            return Err(KeyFormatError::Character { at });
        }
        Ok(Self(value))
    }
}

impl From<KeyId> for String {
    fn from(value: KeyId) -> Self {
        value.0
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({})", self.0)
    }
}

/// SHA-256 of a whole key: what the server stores instead of the key.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyDigest([u8; 32]);

impl KeyDigest {
    /// Wraps a stored digest.
    #[must_use]
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The digest's bytes, for storage.
    #[must_use]
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Compares two digests in constant time.
    #[must_use]
    pub fn matches(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl fmt::Debug for KeyDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyDigest(..)")
    }
}

/// A whole API key. Its text lives in a zeroizing box; `Debug` shows only the preview.
pub struct ApiKey {
    text: SecretString,
    kind: KeyKind,
}

impl ApiKey {
    /// Draws a new key of `kind` from `rng`, which must be a cryptographic RNG (the OS RNG in
    /// production).
    ///
    /// # Errors
    /// The RNG's own error, if it cannot produce bytes.
    pub fn generate<R: TryCryptoRng + ?Sized>(
        kind: KeyKind,
        rng: &mut R,
    ) -> Result<Self, R::Error> {
        let mut text = Zeroizing::new(String::with_capacity(KEY_LEN));
        text.push_str(kind.prefix());
        let mut pool = Zeroizing::new([0u8; 64]);
        let mut want = KEY_ID_LEN + SECRET_LEN;
        while want > 0 {
            rng.try_fill_bytes(pool.as_mut())?;
            for &b in pool.iter() {
                if want == 0 {
                    break;
                }
                if b < REJECT_FROM {
                    text.push(char::from(BASE62[usize::from(b % 62)]));
                    want -= 1;
                }
            }
        }
        let checksum = checksum(text.as_bytes());
        text.push_str(&checksum);
        Ok(Self {
            text: SecretString::from(text.as_str()),
            kind,
        })
    }

    /// Parses and checks `text` offline: prefix, length, alphabet and checksum.
    ///
    /// # Errors
    /// [`KeyFormatError`] says what is wrong, in words a person can act on.
    pub fn parse(text: &str) -> Result<Self, KeyFormatError> {
        let kind = if text.starts_with(KeyKind::Personal.prefix()) {
            KeyKind::Personal
        } else if text.starts_with(KeyKind::Team.prefix()) {
            KeyKind::Team
        } else {
            return Err(KeyFormatError::Prefix);
        };
        if text.len() != KEY_LEN {
            return Err(KeyFormatError::Length {
                len: text.chars().count(),
            });
        }
        if let Some(at) = text
            .bytes()
            .skip(PREFIX_LEN)
            .position(|b| !b.is_ascii_alphanumeric())
        {
            return Err(KeyFormatError::Character {
                at: at + PREFIX_LEN,
            });
        }
        let (body, sum) = text.split_at(KEY_LEN - CHECKSUM_LEN);
        let expected = checksum(body.as_bytes());
        if !bool::from(expected.as_bytes().ct_eq(sum.as_bytes())) {
            return Err(KeyFormatError::Checksum);
        }
        Ok(Self {
            text: SecretString::from(text),
            kind,
        })
    }

    /// Personal or team.
    #[must_use]
    pub const fn kind(&self) -> KeyKind {
        self.kind
    }

    /// The public key id.
    #[must_use]
    pub fn id(&self) -> KeyId {
        KeyId(self.expose()[PREFIX_LEN..PREFIX_LEN + KEY_ID_LEN].to_owned())
    }

    /// The preview shown in listings: the prefix and the last four characters.
    #[must_use]
    pub fn preview(&self) -> String {
        preview(self.kind, &self.expose()[KEY_LEN - 4..])
    }

    /// The last four characters, which the server keeps to rebuild the preview.
    #[must_use]
    pub fn last4(&self) -> &str {
        &self.expose()[KEY_LEN - 4..]
    }

    /// SHA-256 of the whole key.
    #[must_use]
    pub fn digest(&self) -> KeyDigest {
        KeyDigest(Sha256::digest(self.expose().as_bytes()).into())
    }

    /// The whole key, for the few places it must leave: the one-time display and the
    /// `Authorization` header.
    #[must_use]
    pub fn expose(&self) -> &str {
        self.text.expose_secret()
    }
}

/// Builds the listing preview from a key's kind and last four characters.
#[must_use]
pub fn preview(kind: KeyKind, last4: &str) -> String {
    format!("{}…{last4}", kind.prefix())
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApiKey({})", self.preview())
    }
}

/// CRC32 of `body` as 6 base62 digits, most significant first, left-padded with `0`.
fn checksum(body: &[u8]) -> String {
    let mut n = crc32fast::hash(body);
    let mut digits = [b'0'; CHECKSUM_LEN];
    for slot in digits.iter_mut().rev() {
        *slot = BASE62[(n % 62) as usize];
        n /= 62;
    }
    debug_assert_eq!(n, 0, "62^6 > 2^32, so six digits always suffice");
    digits.iter().map(|&b| char::from(b)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;
    use std::convert::Infallible;

    fn key(kind: KeyKind, seed: u64) -> ApiKey {
        let mut rng = StdRng::seed_from_u64(seed);
        let Ok(key) = ApiKey::generate::<StdRng>(kind, &mut rng);
        key
    }

    #[test]
    fn generated_keys_have_the_documented_shape() {
        for kind in [KeyKind::Personal, KeyKind::Team] {
            let k = key(kind, 7);
            let text = k.expose();
            assert_eq!(text.len(), KEY_LEN);
            assert_eq!(KEY_LEN, 54);
            assert!(text.starts_with(kind.prefix()));
            assert!(
                text[PREFIX_LEN..]
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric())
            );
            let parsed = ApiKey::parse(text).expect("a generated key parses");
            assert_eq!(parsed.kind(), kind);
            assert_eq!(parsed.id(), k.id());
            assert_eq!(parsed.id().as_str(), &text[8..16]);
            assert!(parsed.digest().matches(&k.digest()));
        }
    }

    #[test]
    fn checksum_is_crc32_in_base62_most_significant_first() {
        // CRC32("") = 0 → all padding. CRC32("123456789") = 0xCBF43926 (the standard check
        // value) = 3421780262, whose base62 digits were computed independently (Python's zlib).
        assert_eq!(checksum(b""), "000000");
        assert_eq!(checksum(b"123456789"), "3jZRME");
        // The largest CRC needs exactly six digits: 62^6 > 2^32 - 1.
        assert!(62u64.pow(6) > u64::from(u32::MAX));
    }

    #[test]
    fn known_key_round_trips() {
        let body = "latch_p_AbCd1234ABCDEFGHIJKLMNOPQRSTUVWXYZ012345";
        let text = format!("{body}{}", checksum(body.as_bytes()));
        let k = ApiKey::parse(&text).expect("valid");
        assert_eq!(k.kind(), KeyKind::Personal);
        assert_eq!(k.id().as_str(), "AbCd1234");
        assert_eq!(k.preview(), format!("latch_p_…{}", &text[50..]));
        assert_eq!(k.last4(), &text[50..]);
    }

    #[test]
    fn mistyped_keys_are_rejected_offline_with_a_clear_message() {
        let good = key(KeyKind::Team, 1).expose().to_owned();
        let mut flipped = good.clone().into_bytes();
        flipped[20] = if flipped[20] == b'a' { b'b' } else { b'a' };
        let flipped = String::from_utf8(flipped).expect("ascii");
        let mut swapped = good.clone().into_bytes();
        swapped.swap(30, 31);
        let swapped = String::from_utf8(swapped).expect("ascii");
        let cases: Vec<(String, KeyFormatError)> = vec![
            (String::new(), KeyFormatError::Prefix),
            ("sk-live-abc".into(), KeyFormatError::Prefix),
            ("LATCH_P_".to_owned() + &good[8..], KeyFormatError::Prefix),
            ("latch_x_".to_owned() + &good[8..], KeyFormatError::Prefix),
            (good[..40].to_owned(), KeyFormatError::Length { len: 40 }),
            (good.clone() + "x", KeyFormatError::Length { len: 55 }),
            (
                format!("{} ", &good[..53]),
                KeyFormatError::Character { at: 53 },
            ),
            (
                format!("{}-{}", &good[..20], &good[21..]),
                KeyFormatError::Character { at: 20 },
            ),
            (flipped, KeyFormatError::Checksum),
            (swapped.clone(), KeyFormatError::Checksum),
        ];
        for (text, want) in cases {
            let err = ApiKey::parse(&text).expect_err("refused");
            assert_eq!(err, want, "{text:?}");
            let msg = err.to_string();
            assert!(!msg.contains(&good[8..]), "message quotes the key: {msg}");
        }
        assert!(swapped != good, "the swap changed something");
    }

    #[test]
    fn debug_and_preview_hide_the_secret() {
        let k = key(KeyKind::Personal, 3);
        let shown = format!("{k:?} {:?}", k.digest());
        assert!(!shown.contains(&k.expose()[16..48]), "{shown}");
        assert!(shown.starts_with("ApiKey(latch_p_…"), "{shown}");
        assert_eq!(k.preview().chars().count(), 8 + 1 + 4);
    }

    #[test]
    fn different_draws_give_different_keys_and_digests() {
        let a = key(KeyKind::Personal, 1);
        let b = key(KeyKind::Personal, 2);
        assert_ne!(a.expose(), b.expose());
        assert!(!a.digest().matches(&b.digest()));
        let stored = KeyDigest::from_bytes(*a.digest().as_bytes());
        assert!(stored.matches(&a.digest()));
    }

    /// An RNG that yields only bytes ≥ 248 for a while: they must all be rejected, not folded
    /// onto the first digits (which is what `b % 62` without rejection would do).
    struct Biased {
        calls: u32,
    }
    impl rand_core::TryRng for Biased {
        type Error = Infallible;
        fn try_next_u32(&mut self) -> Result<u32, Infallible> {
            unreachable!("only fill_bytes is used")
        }
        fn try_next_u64(&mut self) -> Result<u64, Infallible> {
            unreachable!("only fill_bytes is used")
        }
        fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
            self.calls += 1;
            for (i, b) in dst.iter_mut().enumerate() {
                *b = if self.calls < 3 {
                    [248, 250, 255][i % 3]
                } else {
                    61
                };
            }
            Ok(())
        }
    }
    impl rand_core::TryCryptoRng for Biased {}

    #[test]
    fn generation_rejects_bytes_that_would_bias_the_digits() {
        let Ok(k) = ApiKey::generate(KeyKind::Team, &mut Biased { calls: 0 });
        assert_eq!(
            &k.expose()[8..48],
            "z".repeat(40),
            "only accepted bytes become digits"
        );
    }

    #[test]
    fn generated_digits_are_uniform_enough() {
        // 62 digits × 40 characters × 500 keys = ~323 samples per digit; a biased mapping
        // (e.g. the first 8 digits twice as likely) would be far outside ±35%.
        let mut counts = [0u32; 62];
        for seed in 0..500 {
            for b in key(KeyKind::Personal, seed).expose()[8..48].bytes() {
                let i = BASE62.iter().position(|&d| d == b).expect("base62");
                counts[i] += 1;
            }
        }
        let mean = 500.0 * 40.0 / 62.0;
        for (i, &c) in counts.iter().enumerate() {
            let c = f64::from(c);
            assert!(
                (c - mean).abs() < mean * 0.35,
                "digit {i}: {c} vs mean {mean}"
            );
        }
    }

    #[test]
    fn key_id_validation() {
        assert!(KeyId::try_from("AbCd1234".to_owned()).is_ok());
        assert!(KeyId::try_from("AbCd123".to_owned()).is_err());
        assert!(KeyId::try_from("AbCd12/4".to_owned()).is_err());
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    proptest! {
        #[test]
        fn every_single_character_change_is_caught_offline(
            seed in any::<u64>(),
            at in 8usize..KEY_LEN,
            digit in 0usize..62,
        ) {
            let Ok(key) = ApiKey::generate(KeyKind::Personal, &mut StdRng::seed_from_u64(seed));
            let mut bytes = key.expose().as_bytes().to_vec();
            prop_assume!(bytes[at] != BASE62[digit]);
            bytes[at] = BASE62[digit];
            let typo = String::from_utf8(bytes).expect("ascii");
            prop_assert_eq!(ApiKey::parse(&typo).err(), Some(KeyFormatError::Checksum));
        }

        #[test]
        fn parse_never_panics_and_accepts_only_well_formed_keys(text in "\\PC{0,80}") {
            if let Ok(key) = ApiKey::parse(&text) {
                prop_assert_eq!(key.expose(), text.as_str());
                prop_assert_eq!(text.len(), KEY_LEN);
            }
        }

        #[test]
        fn truncation_is_caught(seed in any::<u64>(), keep in 0usize..KEY_LEN) {
            let Ok(key) = ApiKey::generate(KeyKind::Team, &mut StdRng::seed_from_u64(seed));
            prop_assert!(ApiKey::parse(&key.expose()[..keep]).is_err());
        }
    }
}
