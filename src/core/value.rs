//! Secret values: validated, zeroized on drop, never printed.
//!
//! A value lives in a [`secrecy::SecretString`], whose memory is wiped when it is dropped and
//! whose `Debug` prints nothing of it. The only way out is [`SecretValue::expose`], to be called
//! where bytes must leave: the child's environment, an HTTP body, the scrubber's build, the
//! cipher. Values are UTF-8 text (they travel in JSON and end up in environment variables);
//! binary material is stored base64-encoded by the user.

use std::fmt;

use secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroizing;

/// Largest secret value, in bytes (DESIGN §5).
pub const MAX_VALUE_LEN: usize = 64 * 1024;

/// Why a value was refused. Never holds or prints any part of the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    /// The value is empty.
    #[error("the secret value is empty")]
    Empty,
    /// The value is larger than 64 KiB.
    #[error("the secret value is {len} bytes long; at most {max} are allowed")]
    TooLong {
        /// Length of the refused value.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The value holds a NUL byte, which no environment variable can carry.
    #[error(
        "the secret value holds a NUL byte at byte {at}; environment variables cannot carry one"
    )]
    Nul {
        /// Offset of the first NUL.
        at: usize,
    },
    /// The value is not UTF-8 text.
    #[error(
        "the secret value is not UTF-8 text (invalid byte at {at}); encode binary material, e.g. \
         as base64"
    )]
    NotUtf8 {
        /// Offset of the first invalid byte.
        at: usize,
    },
}

/// A secret value: at most 64 KiB of UTF-8 without NUL, wiped from memory on drop.
pub struct SecretValue(SecretString);

impl SecretValue {
    /// Validates and takes `value`. The string is moved, not copied, into the zeroizing box;
    /// on refusal it is wiped before the error returns.
    ///
    /// # Errors
    /// [`ValueError`] says which rule the value breaks, never what it holds.
    pub fn new(value: String) -> Result<Self, ValueError> {
        let value = Zeroizing::new(value);
        check(value.as_bytes())?;
        Ok(Self(SecretString::from(value.as_str())))
    }

    /// Validates and takes `bytes` (for example a file's content), wiping them in every case.
    ///
    /// # Errors
    /// [`ValueError`] says which rule the value breaks, never what it holds.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self, ValueError> {
        let bytes = Zeroizing::new(bytes);
        Ok(Self(SecretString::from(Self::check_text(&bytes)?)))
    }

    /// Checks `bytes` against the rules of a value without taking them: the text they hold.
    ///
    /// # Errors
    /// [`ValueError`] says which rule the value breaks, never what it holds.
    pub fn check_text(bytes: &[u8]) -> Result<&str, ValueError> {
        check(bytes)?;
        std::str::from_utf8(bytes).map_err(|e| ValueError::NotUtf8 {
            at: e.valid_up_to(),
        })
    }

    /// The value, for the few places where bytes must leave.
    #[must_use]
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    /// Length in bytes (part of a secret's metadata).
    #[must_use]
    pub fn len(&self) -> usize {
        self.expose().len()
    }

    /// Always false: an empty value is refused at construction.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.expose().is_empty()
    }
}

fn check(bytes: &[u8]) -> Result<(), ValueError> {
    if bytes.is_empty() {
        return Err(ValueError::Empty);
    }
    if bytes.len() > MAX_VALUE_LEN {
        return Err(ValueError::TooLong {
            len: bytes.len(),
            max: MAX_VALUE_LEN,
        });
    }
    if let Some(at) = bytes.iter().position(|&b| b == 0) {
        return Err(ValueError::Nul { at });
    }
    Ok(())
}

impl Clone for SecretValue {
    fn clone(&self) -> Self {
        Self(SecretString::from(self.expose()))
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretValue([REDACTED])")
    }
}

/// A growable byte buffer for text that holds secret values, such as an answer being written.
///
/// A `Vec` that grows leaves its old allocation to the allocator as it was, values included;
/// this one moves to a new allocation and wipes the old one, and wipes its whole capacity on
/// drop. `Debug` prints only its length.
#[derive(Default)]
pub struct WipingBuf(Vec<u8>);

impl WipingBuf {
    /// An empty buffer with room for `capacity` bytes before it first grows.
    #[must_use]
    pub fn with_capacity(capacity: usize) -> Self {
        Self(Vec::with_capacity(capacity))
    }

    /// Appends `bytes`, growing (and wiping what it leaves) when there is no room.
    #[inline]
    pub fn extend(&mut self, bytes: &[u8]) {
        if self.0.capacity() - self.0.len() < bytes.len() {
            self.grow(bytes.len());
        }
        self.0.extend_from_slice(bytes);
    }

    /// Moves to an allocation with room for `more` bytes, wiping the one it leaves.
    #[cold]
    fn grow(&mut self, more: usize) {
        let needed = self.0.len() + more;
        let mut grown = Vec::with_capacity(needed.max(2 * self.0.capacity()));
        grown.extend_from_slice(&self.0);
        wipe_vec(&mut std::mem::replace(&mut self.0, grown));
    }
}

impl Drop for WipingBuf {
    fn drop(&mut self) {
        wipe_vec(&mut self.0);
    }
}

/// Overwrites `bytes` with zeros, in a way the compiler may not remove even when the memory is
/// freed next (glibc's `explicit_bzero`: a `memset` it must keep). `zeroize`'s volatile loop
/// writes one byte at a time, which showed in the platform's resolve profile; this runs at
/// `memset` speed.
pub fn wipe(bytes: &mut [u8]) {
    // SAFETY: the pointer and length are those of a live, writable slice.
    unsafe { wipe_raw(bytes.as_mut_ptr(), bytes.len()) }
}

/// Wipes a vector's whole capacity (what it holds, and whatever it held beyond its length) and
/// empties it.
pub fn wipe_vec(v: &mut Vec<u8>) {
    v.clear();
    // SAFETY: a vector's buffer is valid for writes of its whole capacity.
    unsafe { wipe_raw(v.as_mut_ptr(), v.capacity()) }
}

/// [`wipe`] over raw memory, initialised or not.
///
/// # Safety
/// `ptr` must be valid for writes of `len` bytes.
pub unsafe fn wipe_raw(ptr: *mut u8, len: usize) {
    // SAFETY: the caller guarantees `ptr..ptr + len` is writable.
    unsafe { nix::libc::explicit_bzero(ptr.cast(), len) }
}

impl AsRef<[u8]> for WipingBuf {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl std::io::Write for WipingBuf {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.extend(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl fmt::Debug for WipingBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WipingBuf({} bytes)", self.0.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "sk-live-4f9a8b7c6d5e";

    #[test]
    fn accepts_text_up_to_64_kib() {
        let v = SecretValue::new(SAMPLE.to_owned()).expect("valid");
        assert_eq!(v.expose(), SAMPLE);
        assert_eq!(v.len(), SAMPLE.len());
        assert!(!v.is_empty());
        let max = "x".repeat(MAX_VALUE_LEN);
        assert_eq!(
            SecretValue::new(max).expect("64 KiB is allowed").len(),
            MAX_VALUE_LEN
        );
        let multi_line = "-----BEGIN KEY-----\nabc\r\n-----END KEY-----\n".to_owned();
        assert!(SecretValue::new(multi_line).is_ok());
        assert!(SecretValue::new("päßwörd ✓".to_owned()).is_ok());
    }

    #[test]
    fn refuses_bad_values_without_quoting_them() {
        let cases: Vec<(Vec<u8>, ValueError)> = vec![
            (vec![], ValueError::Empty),
            (
                vec![b'x'; MAX_VALUE_LEN + 1],
                ValueError::TooLong {
                    len: 65537,
                    max: 65536,
                },
            ),
            (b"abc\0def".to_vec(), ValueError::Nul { at: 3 }),
            (b"\0".to_vec(), ValueError::Nul { at: 0 }),
            (b"ok\xff\xfe".to_vec(), ValueError::NotUtf8 { at: 2 }),
        ];
        for (bytes, want) in cases {
            let shown = String::from_utf8_lossy(&bytes).into_owned();
            let err = SecretValue::from_bytes(bytes).expect_err("refused");
            assert_eq!(err, want);
            let msg = err.to_string();
            if shown.len() > 2 {
                assert!(!msg.contains(&shown), "message quotes the value: {msg}");
            }
        }
        assert_eq!(
            SecretValue::new("a\0b".to_owned())
                .expect_err("nul")
                .to_string(),
            "the secret value holds a NUL byte at byte 1; environment variables cannot carry one"
        );
    }

    #[test]
    fn debug_redacts() {
        let v = SecretValue::new(SAMPLE.to_owned()).expect("valid");
        let shown = format!("{v:?} {:?} {:#?}", v.clone(), Some(&v));
        assert!(!shown.contains(SAMPLE), "{shown}");
        assert!(!shown.contains("4f9a"), "{shown}");
        assert!(shown.contains("REDACTED"));
    }

    #[test]
    fn wiping_a_vector_zeroes_its_whole_capacity() {
        let mut v = SAMPLE.as_bytes().to_vec();
        v.extend_from_slice(b"-and-more");
        v.truncate(4); // the rest still sits in the buffer, beyond the length
        v.reserve(64);
        let (ptr, capacity) = (v.as_ptr(), v.capacity());
        wipe_vec(&mut v);
        assert!(v.is_empty());
        assert_eq!(v.capacity(), capacity, "the buffer is kept");
        // SAFETY: the buffer is still allocated (owned by `v`) and every byte of it was just
        // written by the wipe.
        let buffer = unsafe { std::slice::from_raw_parts(ptr, capacity) };
        assert!(buffer.iter().all(|&b| b == 0));
        let mut bytes = *b"abc";
        wipe(&mut bytes);
        assert_eq!(bytes, [0; 3]);
    }

    #[test]
    fn a_wiping_buffer_keeps_its_content_across_growth_and_never_prints_it() {
        use std::io::Write as _;
        let mut buf = WipingBuf::with_capacity(4);
        let mut want = Vec::new();
        for i in 0..200u32 {
            let piece = format!("{SAMPLE}-{i};");
            if i % 2 == 0 {
                buf.extend(piece.as_bytes());
            } else {
                buf.write_all(piece.as_bytes()).expect("writes");
            }
            want.extend_from_slice(piece.as_bytes());
            assert_eq!(buf.as_ref(), want.as_slice(), "after piece {i}");
        }
        let shown = format!("{buf:?}");
        assert_eq!(shown, format!("WipingBuf({} bytes)", want.len()));
        assert!(!shown.contains(SAMPLE));
    }
}
