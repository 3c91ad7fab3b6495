//! Encryption at rest (DESIGN §5): the root key, per-team data keys wrapped by it, and secret
//! values sealed with XChaCha20-Poly1305 under their team's data key.
//!
//! Every ciphertext carries associated data that binds it to where it belongs (a data key to
//! its team; a value to its team, scope, owner, secret id, name, version and key version), so a
//! ciphertext copied onto another row fails its integrity check instead of decrypting.
//! Sealed blobs are `format byte (1) ‖ nonce (24) ‖ ciphertext ‖ tag (16)`.
//!
//! Pure: randomness comes in as an argument; reading the key file is the server's job.

use std::fmt;

use aws_lc_rs::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, Nonce, UnboundKey};
use rand_core::TryCryptoRng;
use zeroize::Zeroizing;

use super::resolve::Scope;
use super::value::SecretValue;

const FORMAT: u8 = 1;
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;
const CHECK_PLAINTEXT: &[u8] = b"latch root key check v1";

/// Why a key or ciphertext was refused. Never holds key material or plaintext.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    /// The root key file's content is not 64 hex characters.
    #[error(
        "the root key must be 64 hexadecimal characters (32 bytes), optionally followed by a \
         newline; `openssl rand -hex 32` makes one"
    )]
    RootKeyFormat,
    /// The root key does not match the database.
    #[error("the root key does not match this database (its check value does not decrypt)")]
    WrongRootKey,
    /// A stored ciphertext failed authentication: altered, or moved to another row.
    #[error(
        "a stored ciphertext failed its integrity check: it was altered or moved to another row"
    )]
    Integrity,
    /// A stored blob is not in the sealed format.
    #[error("a stored ciphertext is malformed")]
    Malformed,
    /// The random number generator failed.
    #[error("the operating system's random number generator failed")]
    Rng,
}

/// The 32-byte root key. Wiped on drop; `Debug` prints nothing of it.
pub struct RootKey(Zeroizing<[u8; 32]>);

/// A team's 32-byte data key. Wiped on drop; `Debug` prints nothing of it.
pub struct DataKey(Zeroizing<[u8; 32]>);

impl fmt::Debug for RootKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RootKey(..)")
    }
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DataKey(..)")
    }
}

fn random<R: TryCryptoRng + ?Sized>(rng: &mut R) -> Result<Zeroizing<[u8; 32]>, CryptoError> {
    let mut key = Zeroizing::new([0u8; 32]);
    rng.try_fill_bytes(key.as_mut())
        .map_err(|_| CryptoError::Rng)?;
    Ok(key)
}

/// XChaCha20-Poly1305 (draft-irtf-cfrg-xchacha-03 §2.3) for `key` and a 24-byte `nonce`:
/// HChaCha20 derives a subkey from the key and the nonce's first 16 bytes, and ChaCha20-Poly1305
/// (RFC 8439) then runs under that subkey with the nonce `0000 ‖ the last 8 bytes`.
///
/// Composed from `chacha20::hchacha` and aws-lc-rs's ChaCha20-Poly1305 (already linked for TLS)
/// rather than taken whole from the `chacha20poly1305` crate: values are short, and for a
/// 40-byte value that crate's SIMD backends cost ~2 µs where this costs ~0.4 µs, which a resolve
/// pays once per delivered secret. The tests check every output against that crate, both ways.
fn xchacha(key: &[u8; 32], nonce: &[u8; NONCE_LEN]) -> Result<(LessSafeKey, Nonce), CryptoError> {
    let (head, tail) = nonce.split_at(16);
    let head: [u8; 16] = head.try_into().map_err(|_| CryptoError::Malformed)?;
    let mut subkey = chacha20::hchacha::<chacha20::R20>(&(*key).into(), &head.into());
    let cipher = UnboundKey::new(&CHACHA20_POLY1305, subkey.as_slice());
    zeroize::Zeroize::zeroize(subkey.as_mut_slice());
    let cipher = LessSafeKey::new(cipher.map_err(|_| CryptoError::Malformed)?);
    let mut inner = [0u8; 12];
    inner[4..].copy_from_slice(tail);
    Ok((cipher, Nonce::assume_unique_for_key(inner)))
}

/// Seals `plaintext` under `key` with `aad`.
fn seal<R: TryCryptoRng + ?Sized>(
    key: &[u8; 32],
    aad: &[u8],
    plaintext: &[u8],
    rng: &mut R,
) -> Result<Vec<u8>, CryptoError> {
    let mut nonce = [0u8; NONCE_LEN];
    rng.try_fill_bytes(&mut nonce)
        .map_err(|_| CryptoError::Rng)?;
    let (cipher, inner) = xchacha(key, &nonce)?;
    // Encrypted in place in the output; it holds plaintext until sealed, so it is zeroizing.
    let mut sealed = Zeroizing::new(Vec::with_capacity(
        1 + NONCE_LEN + plaintext.len() + TAG_LEN,
    ));
    sealed.push(FORMAT);
    sealed.extend_from_slice(&nonce);
    sealed.extend_from_slice(plaintext);
    let tag = cipher
        .seal_in_place_separate_tag(inner, Aad::from(aad), &mut sealed[1 + NONCE_LEN..])
        .map_err(|_| CryptoError::Malformed)?;
    sealed.extend_from_slice(tag.as_ref());
    Ok(std::mem::take(&mut *sealed))
}

/// Opens a blob made by [`seal`]; the plaintext comes back in a zeroizing buffer.
fn open(key: &[u8; 32], aad: &[u8], sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    let mut plain = Zeroizing::new(Vec::new());
    open_into(key, aad, sealed, &mut plain)?;
    Ok(plain)
}

/// The nonce and the encrypted part of a sealed blob.
fn parse(sealed: &[u8]) -> Result<([u8; NONCE_LEN], &[u8]), CryptoError> {
    if sealed.len() < 1 + NONCE_LEN + TAG_LEN || sealed[0] != FORMAT {
        return Err(CryptoError::Malformed);
    }
    let nonce = sealed[1..=NONCE_LEN]
        .try_into()
        .map_err(|_| CryptoError::Malformed)?;
    Ok((nonce, &sealed[1 + NONCE_LEN..]))
}

/// Opens `sealed` into `out`, which ends up holding exactly the plaintext.
fn open_into(
    key: &[u8; 32],
    aad: &[u8],
    sealed: &[u8],
    out: &mut Zeroizing<Vec<u8>>,
) -> Result<(), CryptoError> {
    let (nonce, body) = parse(sealed)?;
    let (cipher, inner) = xchacha(key, &nonce)?;
    open_with(&cipher, inner, aad, body, out)
}

/// Opens `body` (ciphertext and tag) into `out`. Whatever `out` held before is wiped first, and
/// it is never grown in place, so no plaintext is left in memory that an allocator frees.
fn open_with(
    cipher: &LessSafeKey,
    inner: Nonce,
    aad: &[u8],
    body: &[u8],
    out: &mut Zeroizing<Vec<u8>>,
) -> Result<(), CryptoError> {
    crate::core::value::wipe_vec(out);
    if out.capacity() < body.len() {
        **out = Vec::with_capacity(body.len());
    }
    out.extend_from_slice(body);
    let plain = cipher
        .open_in_place(inner, Aad::from(aad), out)
        .map_err(|_| CryptoError::Integrity)?
        .len();
    out.truncate(plain);
    Ok(())
}

fn data_key_aad(team: i64) -> Vec<u8> {
    let mut aad = b"latch/data-key/v1\0".to_vec();
    aad.extend_from_slice(&team.to_be_bytes());
    aad
}

fn seal_key_aad(team: i64) -> Vec<u8> {
    let mut aad = b"latch/seal-key/v1\0".to_vec();
    aad.extend_from_slice(&team.to_be_bytes());
    aad
}

impl RootKey {
    /// Parses a key file's content: 64 hex characters, optionally followed by `\n` or `\r\n`.
    ///
    /// # Errors
    /// [`CryptoError::RootKeyFormat`] for anything else.
    pub fn parse_hex(content: &[u8]) -> Result<Self, CryptoError> {
        let text = content
            .strip_suffix(b"\n")
            .map_or(content, |t| t.strip_suffix(b"\r").unwrap_or(t));
        if text.len() != 64 {
            return Err(CryptoError::RootKeyFormat);
        }
        let mut key = Zeroizing::new([0u8; 32]);
        for (i, pair) in text.chunks_exact(2).enumerate() {
            let hi = hex_digit(pair[0]).ok_or(CryptoError::RootKeyFormat)?;
            let lo = hex_digit(pair[1]).ok_or(CryptoError::RootKeyFormat)?;
            key[i] = (hi << 4) | lo;
        }
        Ok(Self(key))
    }

    /// A new random root key.
    ///
    /// # Errors
    /// [`CryptoError::Rng`] if the RNG fails.
    pub fn generate<R: TryCryptoRng + ?Sized>(rng: &mut R) -> Result<Self, CryptoError> {
        random(rng).map(Self)
    }

    /// The key as 64 lower-case hex characters and a newline: the key file's content.
    #[must_use]
    pub fn to_hex(&self) -> Zeroizing<String> {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut text = Zeroizing::new(String::with_capacity(65));
        for &b in self.0.iter() {
            text.push(char::from(DIGITS[usize::from(b >> 4)]));
            text.push(char::from(DIGITS[usize::from(b & 0xf)]));
        }
        text.push('\n');
        text
    }

    /// The check value stored at first start: a known text sealed under this key.
    ///
    /// # Errors
    /// [`CryptoError::Rng`] if the RNG fails.
    pub fn check_value<R: TryCryptoRng + ?Sized>(
        &self,
        rng: &mut R,
    ) -> Result<Vec<u8>, CryptoError> {
        seal(&self.0, b"latch/check/v1", CHECK_PLAINTEXT, rng)
    }

    /// Whether this key made `check`.
    ///
    /// # Errors
    /// [`CryptoError::WrongRootKey`] when it did not.
    pub fn verify(&self, check: &[u8]) -> Result<(), CryptoError> {
        match open(&self.0, b"latch/check/v1", check) {
            Ok(plain) if plain.as_slice() == CHECK_PLAINTEXT => Ok(()),
            _ => Err(CryptoError::WrongRootKey),
        }
    }

    /// Wraps `key`, the data key of team `team`.
    ///
    /// # Errors
    /// [`CryptoError::Rng`] if the RNG fails.
    pub fn wrap<R: TryCryptoRng + ?Sized>(
        &self,
        team: i64,
        key: &DataKey,
        rng: &mut R,
    ) -> Result<Vec<u8>, CryptoError> {
        seal(&self.0, &data_key_aad(team), key.0.as_ref(), rng)
    }

    /// Unwraps team `team`'s data key.
    ///
    /// # Errors
    /// [`CryptoError::Integrity`] if `wrapped` was altered or belongs to another team.
    pub fn unwrap(&self, team: i64, wrapped: &[u8]) -> Result<DataKey, CryptoError> {
        let plain = open(&self.0, &data_key_aad(team), wrapped)?;
        let key: [u8; 32] = plain
            .as_slice()
            .try_into()
            .map_err(|_| CryptoError::Malformed)?;
        Ok(DataKey(Zeroizing::new(key)))
    }

    /// Wraps the private half of team `team`'s sealing key (DESIGN §12), under associated
    /// data of its own so it can never pass for a data key.
    ///
    /// # Errors
    /// [`CryptoError::Rng`] if the RNG fails.
    pub fn wrap_seal_key<R: TryCryptoRng + ?Sized>(
        &self,
        team: i64,
        private: &[u8],
        rng: &mut R,
    ) -> Result<Vec<u8>, CryptoError> {
        seal(&self.0, &seal_key_aad(team), private, rng)
    }

    /// Unwraps the private half of team `team`'s sealing key.
    ///
    /// # Errors
    /// [`CryptoError::Integrity`] if `wrapped` was altered or belongs to another team.
    pub fn unwrap_seal_key(
        &self,
        team: i64,
        wrapped: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        open(&self.0, &seal_key_aad(team), wrapped)
    }
}

fn hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Where a secret value belongs: all of it is bound into the ciphertext.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Binding<'a> {
    /// Team id.
    pub team: i64,
    /// Team or personal.
    pub scope: Scope,
    /// The owning user, for a personal secret.
    pub owner: Option<i64>,
    /// The secret's row id.
    pub secret: i64,
    /// Its name as stored.
    pub name: &'a str,
    /// The value's version.
    pub version: u32,
    /// The data key's version.
    pub key_version: u32,
}

impl Binding<'_> {
    /// Length-prefixed, so no two bindings encode alike: prefix, team, scope, owner tag and
    /// id, secret, name length and name, version, key version.
    fn aad(&self) -> AadBuf {
        const PREFIX: &[u8] = b"latch/secret/v1\0";
        let (tag, owner) = match self.owner {
            None => (0u8, None),
            Some(owner) => (1, Some(owner.to_be_bytes())),
        };
        let scope = [match self.scope {
            Scope::Team => 0u8,
            Scope::Personal => 1,
        }];
        let parts: [&[u8]; 10] = [
            PREFIX,
            &self.team.to_be_bytes(),
            &scope,
            &[tag],
            owner.as_ref().map_or(&[][..], |o| &o[..]),
            &self.secret.to_be_bytes(),
            &(self.name.len() as u64).to_be_bytes(),
            self.name.as_bytes(),
            &self.version.to_be_bytes(),
            &self.key_version.to_be_bytes(),
        ];
        let len = parts.iter().map(|p| p.len()).sum();
        let mut aad = if len <= AAD_ON_STACK {
            AadBuf::Stack([0; AAD_ON_STACK], len)
        } else {
            AadBuf::Heap(vec![0; len])
        };
        let mut at = 0;
        for part in parts {
            aad.as_mut()[at..at + part.len()].copy_from_slice(part);
            at += part.len();
        }
        aad
    }
}

/// Room for the associated data of every name a secret may have (at most 128 bytes).
const AAD_ON_STACK: usize = 200;

/// A binding's associated data: built on the stack, so opening a value allocates nothing for
/// it (a longer name, which a secret never has, goes to the heap).
enum AadBuf {
    Stack([u8; AAD_ON_STACK], usize),
    Heap(Vec<u8>),
}

impl AsRef<[u8]> for AadBuf {
    fn as_ref(&self) -> &[u8] {
        match self {
            Self::Stack(bytes, len) => &bytes[..*len],
            Self::Heap(bytes) => bytes,
        }
    }
}

impl AsMut<[u8]> for AadBuf {
    fn as_mut(&mut self) -> &mut [u8] {
        match self {
            Self::Stack(bytes, len) => &mut bytes[..*len],
            Self::Heap(bytes) => bytes,
        }
    }
}

impl DataKey {
    /// A new random data key.
    ///
    /// # Errors
    /// [`CryptoError::Rng`] if the RNG fails.
    pub fn generate<R: TryCryptoRng + ?Sized>(rng: &mut R) -> Result<Self, CryptoError> {
        random(rng).map(Self)
    }

    /// Seals `value` for the row described by `binding`.
    ///
    /// # Errors
    /// [`CryptoError::Rng`] if the RNG fails.
    pub fn seal<R: TryCryptoRng + ?Sized>(
        &self,
        binding: &Binding<'_>,
        value: &SecretValue,
        rng: &mut R,
    ) -> Result<Vec<u8>, CryptoError> {
        seal(
            &self.0,
            binding.aad().as_ref(),
            value.expose().as_bytes(),
            rng,
        )
    }

    /// Opens a value sealed for the row described by `binding`.
    ///
    /// # Errors
    /// [`CryptoError::Integrity`] if the ciphertext was altered or belongs to another row;
    /// [`CryptoError::Malformed`] if it is not a sealed value.
    pub fn open(&self, binding: &Binding<'_>, sealed: &[u8]) -> Result<SecretValue, CryptoError> {
        let mut plain = open(&self.0, binding.aad().as_ref(), sealed)?;
        SecretValue::from_bytes(std::mem::take(&mut *plain)).map_err(|_| CryptoError::Malformed)
    }

    /// The cipher of one sealed value (the subkey its nonce derives), to open it again and
    /// again without deriving it anew; see [`ValueKey`].
    ///
    /// # Errors
    /// [`CryptoError::Malformed`] if `sealed` is not a sealed value.
    pub fn value_key(&self, sealed: &[u8]) -> Result<ValueKey, CryptoError> {
        let (nonce, _) = parse(sealed)?;
        let (cipher, _) = xchacha(&self.0, &nonce)?;
        Ok(ValueKey { nonce, cipher })
    }
}

/// The key of a device's BYOK store (DESIGN §14): 32 random bytes, kept in the OS keyring (or,
/// with `--insecure-store`, in a 0600 file beside the store). Wiped on drop; `Debug` prints
/// nothing of it.
pub struct DeviceKey(Zeroizing<[u8; 32]>);

impl fmt::Debug for DeviceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DeviceKey(..)")
    }
}

/// Associated data of the BYOK store: a store sealed for something else does not open as one.
const DEVICE_STORE_AAD: &[u8] = b"latch/byok-store/v1";

impl DeviceKey {
    /// A new random device key.
    ///
    /// # Errors
    /// [`CryptoError::Rng`] if the RNG fails.
    pub fn generate<R: TryCryptoRng + ?Sized>(rng: &mut R) -> Result<Self, CryptoError> {
        random(rng).map(Self)
    }

    /// Parses the key as kept: 64 hex characters, optionally followed by a newline.
    ///
    /// # Errors
    /// [`CryptoError::Malformed`] for anything else.
    pub fn parse_hex(text: &[u8]) -> Result<Self, CryptoError> {
        RootKey::parse_hex(text)
            .map(|root| Self(root.0))
            .map_err(|_| CryptoError::Malformed)
    }

    /// The key as kept: 64 lower-case hex characters and a newline.
    #[must_use]
    pub fn to_hex(&self) -> Zeroizing<String> {
        RootKey(self.0.clone()).to_hex()
    }

    /// Seals the store's plaintext.
    ///
    /// # Errors
    /// [`CryptoError::Rng`] if the RNG fails.
    pub fn seal<R: TryCryptoRng + ?Sized>(
        &self,
        plaintext: &[u8],
        rng: &mut R,
    ) -> Result<Vec<u8>, CryptoError> {
        seal(&self.0, DEVICE_STORE_AAD, plaintext, rng)
    }

    /// Opens a sealed store; the plaintext comes back in a zeroizing buffer.
    ///
    /// # Errors
    /// [`CryptoError::Integrity`] under another key or when altered; [`CryptoError::Malformed`]
    /// if it is not a sealed blob.
    pub fn open(&self, sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        open(&self.0, DEVICE_STORE_AAD, sealed)
    }
}

/// One sealed value's own cipher: ChaCha20-Poly1305 under the XChaCha20 subkey that its nonce
/// derives from its team's data key. Kept next to the ciphertext between requests, it spares
/// the derivation and the key set-up on every open; it reveals nothing the resident data key
/// does not, and it opens only the ciphertext with its nonce. The subkey lives in aws-lc's key
/// context, which aws-lc wipes when it is freed; `Debug` prints nothing of it.
pub struct ValueKey {
    nonce: [u8; NONCE_LEN],
    cipher: LessSafeKey,
}

impl fmt::Debug for ValueKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ValueKey(..)")
    }
}

impl ValueKey {
    /// Opens the value into `scratch` (reused between values: one buffer, wiped before each
    /// use, instead of an allocation and a copy per value) and returns it, checked as
    /// [`SecretValue::new`] would.
    ///
    /// # Errors
    /// [`CryptoError::Integrity`] if the ciphertext was altered, belongs to another row, or is
    /// not the one this key was made for; [`CryptoError::Malformed`] if it is not a sealed
    /// value.
    pub fn open_into<'s>(
        &self,
        binding: &Binding<'_>,
        sealed: &[u8],
        scratch: &'s mut Zeroizing<Vec<u8>>,
    ) -> Result<&'s str, CryptoError> {
        let (nonce, body) = parse(sealed)?;
        if nonce != self.nonce {
            return Err(CryptoError::Integrity);
        }
        let mut inner = [0u8; 12];
        inner[4..].copy_from_slice(&nonce[16..]);
        open_with(
            &self.cipher,
            Nonce::assume_unique_for_key(inner),
            binding.aad().as_ref(),
            body,
            scratch,
        )?;
        let plain: &'s Zeroizing<Vec<u8>> = scratch;
        SecretValue::check_text(plain).map_err(|_| CryptoError::Malformed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    fn rng() -> StdRng {
        StdRng::seed_from_u64(42)
    }

    fn binding(name: &str) -> Binding<'_> {
        Binding {
            team: 1,
            scope: Scope::Team,
            owner: None,
            secret: 7,
            name,
            version: 1,
            key_version: 1,
        }
    }

    const VALUE: &str = "sk-live-4f9a8b7c6d5e";

    #[test]
    fn a_wrapped_sealing_key_opens_only_as_its_own_teams_sealing_key() {
        let root = RootKey::generate(&mut rng()).expect("root");
        let private = [9u8; 32];
        let wrapped = root.wrap_seal_key(1, &private, &mut rng()).expect("wraps");
        assert_eq!(
            root.unwrap_seal_key(1, &wrapped).expect("opens").as_slice(),
            &private
        );
        assert_eq!(
            root.unwrap_seal_key(2, &wrapped),
            Err(CryptoError::Integrity)
        );
        assert!(root.unwrap(1, &wrapped).is_err(), "never a data key");
        let data = root
            .wrap(1, &DataKey::generate(&mut rng()).expect("key"), &mut rng())
            .expect("wraps");
        assert_eq!(root.unwrap_seal_key(1, &data), Err(CryptoError::Integrity));
    }

    /// The associated data is part of every stored ciphertext: its bytes must never change.
    #[test]
    fn the_associated_data_keeps_its_stored_format() {
        let team = binding("DB_URL").aad();
        let mut want = b"latch/secret/v1\0".to_vec();
        want.extend_from_slice(&1i64.to_be_bytes()); // team
        want.push(0); // scope: team
        want.push(0); // no owner
        want.extend_from_slice(&7i64.to_be_bytes()); // secret id
        want.extend_from_slice(&6u64.to_be_bytes()); // name length
        want.extend_from_slice(b"DB_URL");
        want.extend_from_slice(&1u32.to_be_bytes()); // version
        want.extend_from_slice(&1u32.to_be_bytes()); // key version
        assert_eq!(team.as_ref(), want.as_slice());

        let long = "N".repeat(300); // longer than any secret name: built on the heap
        let personal = Binding {
            scope: Scope::Personal,
            owner: Some(42),
            version: 3,
            ..binding(&long)
        }
        .aad();
        let mut want = b"latch/secret/v1\0".to_vec();
        want.extend_from_slice(&1i64.to_be_bytes());
        want.push(1); // scope: personal
        want.push(1); // an owner…
        want.extend_from_slice(&42i64.to_be_bytes()); // …and its id
        want.extend_from_slice(&7i64.to_be_bytes());
        want.extend_from_slice(&300u64.to_be_bytes());
        want.extend_from_slice(long.as_bytes());
        want.extend_from_slice(&3u32.to_be_bytes());
        want.extend_from_slice(&1u32.to_be_bytes());
        assert_eq!(personal.as_ref(), want.as_slice());
    }

    #[test]
    fn root_key_file_format() {
        let hex = "00112233445566778899aabbccddeeff00112233445566778899AABBCCDDEEFF";
        for content in [hex.to_owned(), format!("{hex}\n"), format!("{hex}\r\n")] {
            let key = RootKey::parse_hex(content.as_bytes()).expect("valid");
            assert_eq!(key.to_hex().as_str(), format!("{}\n", hex.to_lowercase()));
        }
        for bad in [
            String::new(),
            hex[..62].to_owned(),
            format!("{hex}00"),
            format!(" {hex}"),
            format!("{hex}\n\n"),
            hex.replace('0', "g"),
        ] {
            assert_eq!(
                RootKey::parse_hex(bad.as_bytes()).err(),
                Some(CryptoError::RootKeyFormat)
            );
        }
        let key = RootKey::generate(&mut rng()).expect("generates");
        let again = RootKey::parse_hex(key.to_hex().as_bytes()).expect("round trip");
        assert_eq!(again.to_hex(), key.to_hex());
    }

    #[test]
    fn check_value_tells_the_right_root_key() {
        let mut rng = rng();
        let key = RootKey::generate(&mut rng).expect("generates");
        let other = RootKey::generate(&mut rng).expect("generates");
        let check = key.check_value(&mut rng).expect("seals");
        assert_eq!(key.verify(&check), Ok(()));
        assert_eq!(other.verify(&check), Err(CryptoError::WrongRootKey));
        assert_eq!(key.verify(b"garbage"), Err(CryptoError::WrongRootKey));
    }

    #[test]
    fn data_keys_are_bound_to_their_team() {
        let mut rng = rng();
        let root = RootKey::generate(&mut rng).expect("generates");
        let data = DataKey::generate(&mut rng).expect("generates");
        let wrapped = root.wrap(1, &data, &mut rng).expect("wraps");
        let unwrapped = root.unwrap(1, &wrapped).expect("unwraps");
        let value = SecretValue::new(VALUE.to_owned()).expect("valid");
        let sealed = data.seal(&binding("A"), &value, &mut rng).expect("seals");
        assert_eq!(
            unwrapped
                .open(&binding("A"), &sealed)
                .expect("opens")
                .expose(),
            VALUE
        );
        assert_eq!(root.unwrap(2, &wrapped).err(), Some(CryptoError::Integrity));
    }

    /// Every way `sealed` can be out of place (moved to another row, altered, truncated) is
    /// refused by `open`, one way of opening it.
    fn refuses_out_of_place(
        here: Binding<'_>,
        sealed: &[u8],
        mut open: impl FnMut(&Binding<'_>, &[u8]) -> Option<CryptoError>,
    ) {
        let elsewhere = [
            Binding { team: 2, ..here },
            Binding {
                scope: Scope::Personal,
                owner: Some(3),
                ..here
            },
            Binding {
                owner: Some(3),
                ..here
            },
            Binding { secret: 8, ..here },
            Binding {
                name: "OTHER",
                ..here
            },
            Binding { version: 2, ..here },
            Binding {
                key_version: 2,
                ..here
            },
        ];
        for b in elsewhere {
            assert_eq!(open(&b, sealed), Some(CryptoError::Integrity), "{b:?}");
        }
        let mut flipped = sealed.to_vec();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        assert_eq!(open(&here, &flipped), Some(CryptoError::Integrity));
        assert_eq!(open(&here, &sealed[..20]), Some(CryptoError::Malformed));
    }

    #[test]
    fn a_ciphertext_moved_to_another_row_does_not_decrypt() {
        let mut rng = rng();
        let key = DataKey::generate(&mut rng).expect("generates");
        let value = SecretValue::new(VALUE.to_owned()).expect("valid");
        let here = binding("API_KEY");
        let sealed = key.seal(&here, &value, &mut rng).expect("seals");
        assert_eq!(key.open(&here, &sealed).expect("opens").expose(), VALUE);
        refuses_out_of_place(here, &sealed, |b, s| key.open(b, s).err());
        let other_key = DataKey::generate(&mut rng).expect("generates");
        assert_eq!(
            other_key.open(&here, &sealed).err(),
            Some(CryptoError::Integrity)
        );
    }

    #[test]
    fn a_kept_value_key_opens_its_own_ciphertext_and_nothing_else() {
        let mut rng = rng();
        let key = DataKey::generate(&mut rng).expect("generates");
        let value = SecretValue::new(VALUE.to_owned()).expect("valid");
        let here = binding("API_KEY");
        let sealed = key.seal(&here, &value, &mut rng).expect("seals");
        let kept = key.value_key(&sealed).expect("derives");
        assert_eq!(format!("{kept:?}"), "ValueKey(..)");
        // A long value first, so reusing the scratch for a shorter one must truncate.
        let long = SecretValue::new("x".repeat(1000)).expect("valid");
        let long_sealed = key.seal(&here, &long, &mut rng).expect("seals");
        let mut scratch = Zeroizing::new(Vec::new());
        let opened = key.value_key(&long_sealed).expect("derives");
        assert_eq!(
            opened.open_into(&here, &long_sealed, &mut scratch),
            Ok(long.expose())
        );
        assert_eq!(kept.open_into(&here, &sealed, &mut scratch), Ok(VALUE));
        // The same value sealed again has another nonce: not this key's ciphertext.
        let again = key.seal(&here, &value, &mut rng).expect("seals");
        assert_eq!(
            kept.open_into(&here, &again, &mut scratch).err(),
            Some(CryptoError::Integrity)
        );
        refuses_out_of_place(here, &sealed, |b, s| {
            kept.open_into(b, s, &mut scratch).err()
        });
        assert_eq!(
            key.value_key(&sealed[..20]).err(),
            Some(CryptoError::Malformed)
        );
        // A plaintext that breaks the rules of a value is refused, not returned.
        let nul = seal(&key.0, here.aad().as_ref(), b"a\0b", &mut rng).expect("seals");
        let nul_key = key.value_key(&nul).expect("derives");
        assert_eq!(
            nul_key.open_into(&here, &nul, &mut scratch).err(),
            Some(CryptoError::Malformed)
        );
    }

    #[test]
    fn sealing_twice_differs_and_hides_the_value() {
        let mut rng = rng();
        let key = DataKey::generate(&mut rng).expect("generates");
        let value = SecretValue::new(VALUE.to_owned()).expect("valid");
        let a = key.seal(&binding("A"), &value, &mut rng).expect("seals");
        let b = key.seal(&binding("A"), &value, &mut rng).expect("seals");
        assert_ne!(a, b, "random nonces");
        assert!(!a.windows(VALUE.len()).any(|w| w == VALUE.as_bytes()));
        assert_eq!(a.len(), 1 + NONCE_LEN + VALUE.len() + TAG_LEN);
        assert_eq!(format!("{key:?}"), "DataKey(..)");
    }

    mod against_the_chacha20poly1305_crate {
        use super::*;
        use chacha20poly1305::aead::{AeadInOut, KeyInit};
        use chacha20poly1305::{XChaCha20Poly1305, XNonce};
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(512))]

            /// Our composition gives byte for byte what the RustCrypto implementation gives, and
            /// each opens what the other sealed.
            #[test]
            fn same_ciphertexts_both_ways(
                key in any::<[u8; 32]>(),
                seed in any::<u64>(),
                aad in proptest::collection::vec(any::<u8>(), 0..96),
                plaintext in proptest::collection::vec(any::<u8>(), 0..600),
            ) {
                let mut rng = StdRng::seed_from_u64(seed);
                let ours = seal(&key, &aad, &plaintext, &mut rng).expect("seals");
                let nonce: [u8; NONCE_LEN] = ours[1..=NONCE_LEN].try_into().expect("nonce");
                let theirs = XChaCha20Poly1305::new_from_slice(&key).expect("key");
                let mut reference = plaintext.clone();
                theirs
                    .encrypt_in_place(&XNonce::from(nonce), &aad, &mut reference)
                    .expect("encrypts");
                prop_assert_eq!(&ours[1 + NONCE_LEN..], reference.as_slice());

                let mut framed = vec![FORMAT];
                framed.extend_from_slice(&nonce);
                framed.extend_from_slice(&reference);
                let opened = open(&key, &aad, &framed).expect("opens");
                prop_assert_eq!(opened.as_slice(), plaintext.as_slice());
                let mut back = ours[1 + NONCE_LEN..].to_vec();
                theirs
                    .decrypt_in_place(&XNonce::from(nonce), &aad, &mut back)
                    .expect("decrypts");
                prop_assert_eq!(back, plaintext);
            }
        }
    }
}
