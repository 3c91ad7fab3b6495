//! Values sealed by their writer to the team's sealing key (DESIGN §12), so no plaintext value
//! crosses the API on a write made by latch's own clients (the web app and the CLI).
//!
//! HPKE (RFC 9180) base mode with DHKEM(X25519, HKDF-SHA256), HKDF-SHA256 and AES-128-GCM, the
//! suite TLS ECH mandates and WebCrypto offers, through rustls's aws-lc-rs implementation (in
//! latch's tree already; hand-writing HPKE would be the one thing worse than a dependency). The
//! associated data binds team, scope, owner, name and sealing-key id ([`aad`]), so a ciphertext
//! sealed for one secret is refused for any other (`seal_mismatch`). The browser's `seal.js`
//! builds the same bytes; `tests/vectors/seal.json` holds known answers both sides check.
//!
//! Pure except for randomness: rustls draws the ephemeral key of [`seal`] and the key pair of
//! [`SealKeyPair::generate`] from aws-lc's generator and offers no way to pass one in.

use std::fmt;

use rustls::crypto::aws_lc_rs::hpke::DH_KEM_X25519_HKDF_SHA256_AES_128 as SUITE;
use rustls::crypto::hpke::{EncapsulatedSecret, Hpke, HpkePrivateKey, HpkePublicKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::resolve::Scope;

/// HPKE `info`: what the key is for, so a sealed value is no use to any other protocol.
pub const INFO: &[u8] = b"latch/v1 secret value";
/// The suite, as the sealing key's description says it.
pub const SUITE_NAME: &str = "DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-128-GCM";
/// An X25519 public key and an encapsulated key are 32 bytes.
const KEY_LEN: usize = 32;
/// AES-GCM's tag.
const TAG_LEN: usize = 16;
/// The largest sealed value: a 64 KiB value and its tag.
pub const MAX_CIPHERTEXT: usize = 64 * 1024 + TAG_LEN;
/// The longest `ciphertext` field: [`MAX_CIPHERTEXT`] bytes in base64.
pub const MAX_CIPHERTEXT_BASE64: usize = MAX_CIPHERTEXT.div_ceil(3) * 4;

/// Why a sealed value or a sealing key was refused. Never holds key material or plaintext.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// Sealed to another key: another team's, or one since replaced.
    #[error(
        "the value was sealed to the sealing key `{sent}`, not this team's (`{current}`): fetch \
         GET /v1/seal-key and seal it again"
    )]
    OtherKey {
        /// The key id the writer named.
        sent: String,
        /// The team's current key id.
        current: String,
    },
    /// Does not open: altered, or sealed for another team, scope, owner or name.
    #[error(
        "the sealed value does not open for this secret: it was sealed for another team, scope, \
         owner or name, or altered"
    )]
    Mismatch,
    /// Not the shape of a sealed value.
    #[error("{0}")]
    Malformed(&'static str),
    /// The key pair could not be made or read.
    #[error("the team's sealing key is unusable")]
    Key,
}

/// What a sealed value is bound to: the secret it may become.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target<'a> {
    /// Team id.
    pub team: i64,
    /// Team or personal.
    pub scope: Scope,
    /// The owner's user id, for a personal secret (the writer: only owners write them).
    pub owner: Option<i64>,
    /// The secret's name, exactly as written.
    pub name: &'a str,
}

/// The associated data of a sealed value: lines of `field=value` under a fixed first line.
/// No field can hold a newline (ids are numbers, names match `[A-Za-z_][A-Za-z0-9_]*`, key
/// ids are hex), so no two targets encode alike; text, so the browser builds it with a
/// template string.
#[must_use]
pub fn aad(target: &Target<'_>, key_id: &str) -> Vec<u8> {
    let owner = target.owner.map_or_else(String::new, |o| o.to_string());
    format!(
        "latch/v1 sealed value\nteam={}\nscope={}\nowner={owner}\nname={}\nkey={key_id}",
        target.team, target.scope, target.name
    )
    .into_bytes()
}

/// A sealing key's id: the first 16 hex digits of SHA-256 of its public key.
#[must_use]
pub fn key_id(public: &[u8]) -> String {
    use std::fmt::Write as _;
    let digest = Sha256::digest(public);
    digest[..8]
        .iter()
        .fold(String::with_capacity(16), |mut id, b| {
            let _ = write!(id, "{b:02x}");
            id
        })
}

/// A value sealed to a team's sealing key, as the API carries it (`sealed_value`).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Sealed {
    /// The sealing key's id (`GET /v1/seal-key`).
    #[schema(pattern = "^[0-9a-f]{16}$", example = "3f9a0c1b7d2e4a55")]
    pub key_id: String,
    /// HPKE's encapsulated key (32 bytes), standard base64.
    #[schema(example = "mHx1cnY4dGV4dC1lbmMtMzItYnl0ZXMtYmFzZTY0AA==")]
    pub enc: String,
    /// The ciphertext with its tag, standard base64.
    pub ciphertext: String,
}

impl fmt::Debug for Sealed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sealed")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

/// A team's sealing key pair. The private half is wiped on drop and never printed.
pub struct SealKeyPair {
    public: Vec<u8>,
    private: Zeroizing<Vec<u8>>,
}

impl fmt::Debug for SealKeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SealKeyPair")
            .field("key_id", &self.key_id())
            .finish_non_exhaustive()
    }
}

impl SealKeyPair {
    /// A new key pair.
    ///
    /// # Errors
    /// [`SealError::Key`] if the generator fails.
    pub fn generate() -> Result<Self, SealError> {
        let (public, private) = SUITE.generate_key_pair().map_err(|_| SealError::Key)?;
        Ok(Self {
            public: public.0,
            private: Zeroizing::new(private.secret_bytes().to_vec()),
        })
    }

    /// A stored pair: the public key and the unwrapped private key.
    ///
    /// # Errors
    /// [`SealError::Key`] if either is not 32 bytes.
    pub fn from_parts(public: Vec<u8>, private: Zeroizing<Vec<u8>>) -> Result<Self, SealError> {
        if public.len() != KEY_LEN || private.len() != KEY_LEN {
            return Err(SealError::Key);
        }
        Ok(Self { public, private })
    }

    /// The public half.
    #[must_use]
    pub fn public(&self) -> &[u8] {
        &self.public
    }

    /// The private half, for wrapping under the root key.
    #[must_use]
    pub fn private(&self) -> &[u8] {
        &self.private
    }

    /// The key's id.
    #[must_use]
    pub fn key_id(&self) -> String {
        key_id(&self.public)
    }

    /// Opens `sealed` for `target` into a wiping buffer.
    ///
    /// # Errors
    /// [`SealError::OtherKey`] when it names another key, [`SealError::Malformed`] when it is
    /// not base64 of the right sizes, [`SealError::Mismatch`] when it does not open for
    /// `target`.
    pub fn open(
        &self,
        target: &Target<'_>,
        sealed: &Sealed,
    ) -> Result<Zeroizing<Vec<u8>>, SealError> {
        let current = self.key_id();
        if sealed.key_id != current {
            return Err(SealError::OtherKey {
                sent: printable(&sealed.key_id),
                current,
            });
        }
        let enc = decode(&sealed.enc, "enc")?;
        if enc.len() != KEY_LEN {
            return Err(SealError::Malformed(
                "`enc` must be 32 bytes (an X25519 public key), in standard base64",
            ));
        }
        if sealed.ciphertext.len() > MAX_CIPHERTEXT_BASE64 {
            return Err(SealError::Malformed(
                "the sealed value is longer than a 64 KiB value can be",
            ));
        }
        let ciphertext = decode(&sealed.ciphertext, "ciphertext")?;
        if ciphertext.len() < TAG_LEN {
            return Err(SealError::Malformed(
                "`ciphertext` is shorter than its 16-byte tag",
            ));
        }
        let private = HpkePrivateKey::from(self.private.to_vec());
        let plain = SUITE
            .open(
                &EncapsulatedSecret(enc),
                INFO,
                &aad(target, &current),
                &ciphertext,
                &private,
            )
            .map_err(|_| SealError::Mismatch)?;
        Ok(Zeroizing::new(plain))
    }
}

/// A key id sent by a client, safe to print: at most 32 characters of hex digits, others as `?`.
fn printable(sent: &str) -> String {
    sent.chars()
        .take(32)
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '?' })
        .collect()
}

fn decode(text: &str, field: &'static str) -> Result<Vec<u8>, SealError> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|_| {
            SealError::Malformed(if field == "enc" {
                "`enc` is not standard base64"
            } else {
                "`ciphertext` is not standard base64"
            })
        })
}

/// Seals `plaintext` for `target` to the public key `public` whose id is `key_id` (what a
/// writer does: the CLI, and tests).
///
/// # Errors
/// [`SealError::Key`] if `public` is not an X25519 public key.
pub fn seal(
    public: &[u8],
    key_id: &str,
    target: &Target<'_>,
    plaintext: &[u8],
) -> Result<Sealed, SealError> {
    use base64::Engine as _;
    if public.len() != KEY_LEN {
        return Err(SealError::Key);
    }
    let (enc, ciphertext) = SUITE
        .seal(
            INFO,
            &aad(target, key_id),
            plaintext,
            &HpkePublicKey(public.to_vec()),
        )
        .map_err(|_| SealError::Key)?;
    let b64 = base64::engine::general_purpose::STANDARD;
    Ok(Sealed {
        key_id: key_id.to_owned(),
        enc: b64.encode(enc.0),
        ciphertext: b64.encode(ciphertext),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(name: &str) -> Target<'_> {
        Target {
            team: 7,
            scope: Scope::Personal,
            owner: Some(42),
            name,
        }
    }

    #[test]
    fn a_sealed_value_opens_only_for_its_own_target() {
        let pair = SealKeyPair::generate().expect("generates");
        let id = pair.key_id();
        let sealed =
            seal(pair.public(), &id, &target("API_TOKEN"), b"s3cret value").expect("seals");
        let opened = pair.open(&target("API_TOKEN"), &sealed).expect("opens");
        assert_eq!(opened.as_slice(), b"s3cret value");
        let others = [
            Target {
                name: "OTHER",
                ..target("API_TOKEN")
            },
            Target {
                team: 8,
                ..target("API_TOKEN")
            },
            Target {
                owner: Some(43),
                ..target("API_TOKEN")
            },
            Target {
                scope: Scope::Team,
                owner: None,
                ..target("API_TOKEN")
            },
        ];
        for other in &others {
            assert_eq!(
                pair.open(other, &sealed),
                Err(SealError::Mismatch),
                "{other:?}"
            );
        }
        let another = SealKeyPair::generate().expect("generates");
        let resealed = Sealed {
            key_id: another.key_id(),
            ..sealed.clone()
        };
        assert!(matches!(
            another.open(&target("API_TOKEN"), &resealed),
            Err(SealError::Mismatch)
        ));
        assert!(matches!(
            pair.open(&target("API_TOKEN"), &resealed),
            Err(SealError::OtherKey { .. })
        ));
    }

    #[test]
    fn malformed_sealed_values_are_refused_in_words() {
        let pair = SealKeyPair::generate().expect("generates");
        let id = pair.key_id();
        let good = seal(pair.public(), &id, &target("A"), b"value").expect("seals");
        let cases = [
            Sealed {
                enc: "not base64!".into(),
                ..good.clone()
            },
            Sealed {
                enc: "AAAA".into(),
                ..good.clone()
            },
            Sealed {
                ciphertext: "%%".into(),
                ..good.clone()
            },
            Sealed {
                ciphertext: String::new(),
                ..good.clone()
            },
            Sealed {
                ciphertext: "A".repeat(200_000),
                ..good.clone()
            },
        ];
        for case in &cases {
            assert!(
                matches!(pair.open(&target("A"), case), Err(SealError::Malformed(_))),
                "{:?}",
                pair.open(&target("A"), case)
            );
        }
        let hostile = Sealed {
            key_id: "<script>\n".repeat(20),
            ..good
        };
        let message = pair
            .open(&target("A"), &hostile)
            .expect_err("refused")
            .to_string();
        assert!(
            !message.contains('<') && !message.contains('\n'),
            "{message}"
        );
    }

    fn unhex(text: &str) -> Vec<u8> {
        (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex"))
            .collect()
    }

    /// The known answers the browser's seal.js reproduces (tests/js/seal.test.mjs): the server
    /// opens each to its value, with the associated data built here.
    #[test]
    fn the_shared_known_answers_open_to_their_values() {
        let known: serde_json::Value =
            serde_json::from_str(include_str!("../../tests/vectors/seal.json")).expect("json");
        let text = |v: &serde_json::Value| v.as_str().expect("string").to_owned();
        assert_eq!(text(&known["info"]).as_bytes(), INFO);
        assert_eq!(text(&known["suite"]), SUITE_NAME);
        let public = unhex(&text(&known["recipient_public"]));
        let private = Zeroizing::new(unhex(&text(&known["recipient_private"])));
        let pair = SealKeyPair::from_parts(public, private).expect("pair");
        assert_eq!(pair.key_id(), text(&known["key_id"]));
        let vectors = known["vectors"].as_array().expect("vectors");
        assert!(vectors.len() >= 3);
        for v in vectors {
            let name = text(&v["name"]);
            let target = Target {
                team: text(&v["team"]).parse().expect("team"),
                scope: if v["scope"] == "team" {
                    Scope::Team
                } else {
                    Scope::Personal
                },
                owner: v["owner"].as_str().map(|o| o.parse().expect("owner")),
                name: &name,
            };
            assert_eq!(
                aad(&target, &pair.key_id()),
                text(&v["aad"]).into_bytes(),
                "{name}"
            );
            let sealed: Sealed = serde_json::from_value(v["sealed_value"].clone()).expect("sealed");
            let opened = pair.open(&target, &sealed).expect("opens");
            assert_eq!(opened.as_slice(), text(&v["value"]).as_bytes(), "{name}");
        }
        // RFC 9180 A.1.1 through the same library, with the RFC's own info and aad.
        let rfc = &known["rfc9180_a_1_1"];
        let field = |k: &str| unhex(&text(&rfc[k]));
        let opened = SUITE
            .open(
                &EncapsulatedSecret(field("pkEm")),
                &field("info"),
                &field("aad"),
                &field("ct"),
                &HpkePrivateKey::from(field("skRm")),
            )
            .expect("opens");
        assert_eq!(opened, field("pt"));
    }

    #[test]
    fn the_associated_data_is_the_documented_text() {
        assert_eq!(
            aad(&target("API_TOKEN"), "00112233aabbccdd"),
            b"latch/v1 sealed value\nteam=7\nscope=personal\nowner=42\nname=API_TOKEN\nkey=00112233aabbccdd"
        );
        let team = Target {
            scope: Scope::Team,
            owner: None,
            ..target("X")
        };
        assert!(aad(&team, "k").ends_with(b"scope=team\nowner=\nname=X\nkey=k"));
    }

    #[test]
    fn debug_output_holds_no_key_material() {
        let pair = SealKeyPair::generate().expect("generates");
        let shown = format!("{pair:?}");
        assert!(shown.contains(&pair.key_id()));
        let hex: String = pair
            .private()
            .iter()
            .flat_map(|b| [b >> 4, b & 15])
            .map(|n| char::from_digit(u32::from(n), 16).expect("digit"))
            .collect();
        assert!(!shown.contains(&hex) && !shown.contains(&format!("{:?}", pair.private())));
        let sealed = seal(pair.public(), &pair.key_id(), &target("A"), b"v").expect("seals");
        assert!(!format!("{sealed:?}").contains(&sealed.ciphertext));
    }
}
