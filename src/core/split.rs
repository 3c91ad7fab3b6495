//! A credential kept as two random-looking shares, so that no contiguous copy of it stays in
//! memory while it is not being used (DESIGN §6 "Memory hygiene").
//!
//! The launcher needs its API key twice: to resolve the run before the child starts and to
//! report the run's end after the child exits. In between, a scan of its memory must not find
//! the key. [`Split`] keeps `key XOR pad` and `pad` in two separate zeroizing allocations; the
//! key exists whole again only inside [`Split::join`]'s zeroizing result. The pad comes in as
//! an argument (the caller draws it from the OS RNG) so this stays pure.

use std::fmt;

use zeroize::Zeroizing;

/// A secret split into two shares.
pub struct Split {
    masked: Zeroizing<Vec<u8>>,
    pad: Zeroizing<Vec<u8>>,
}

impl Split {
    /// Splits `secret` with `pad`, which must be at least as long and uniformly random.
    ///
    /// # Errors
    /// `None` if the pad is shorter than the secret.
    #[must_use]
    pub fn new(secret: &[u8], pad: Zeroizing<Vec<u8>>) -> Option<Self> {
        if pad.len() < secret.len() {
            return None;
        }
        let masked = Zeroizing::new(secret.iter().zip(pad.iter()).map(|(s, p)| s ^ p).collect());
        Some(Self { masked, pad })
    }

    /// The secret, whole, in a zeroizing buffer.
    #[must_use]
    pub fn join(&self) -> Zeroizing<Vec<u8>> {
        Zeroizing::new(
            self.masked
                .iter()
                .zip(self.pad.iter())
                .map(|(m, p)| m ^ p)
                .collect(),
        )
    }
}

impl Split {
    /// The secret's length.
    #[must_use]
    pub fn len(&self) -> usize {
        self.masked.len()
    }

    /// Whether the secret is empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.masked.is_empty()
    }

    /// The secret's byte at `i` (one byte whole, never the secret).
    ///
    /// # Panics
    /// If `i` is out of range.
    #[must_use]
    pub fn byte(&self, i: usize) -> u8 {
        self.masked[i] ^ self.pad[i]
    }

    /// Whether `candidate` is the secret, compared share by share (no whole copy is made).
    #[must_use]
    pub fn equals(&self, candidate: &[u8]) -> bool {
        candidate.len() == self.len() && self.starts_with(candidate)
    }

    /// Whether the secret starts with `prefix`, compared share by share.
    #[must_use]
    pub fn starts_with(&self, prefix: &[u8]) -> bool {
        prefix.len() <= self.len()
            && prefix
                .iter()
                .zip(self.masked.iter().zip(self.pad.iter()))
                .all(|(c, (m, p))| c ^ p == *m)
    }
}

impl fmt::Debug for Split {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Split(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joins_back_and_keeps_no_share_equal_to_the_secret() {
        let secret = b"latch_p_AbCd1234ABCDEFGHIJKLMNOPQRSTUVWXYZ012345xxxxxx";
        let pad: Vec<u8> = (0u8..=255)
            .cycle()
            .skip(11)
            .step_by(37)
            .take(secret.len())
            .map(|b| b | 1)
            .collect();
        let split = Split::new(secret, Zeroizing::new(pad)).expect("pad long enough");
        assert_eq!(split.join().as_slice(), secret);
        assert_ne!(split.masked.as_slice(), secret.as_slice());
        assert_ne!(split.pad.as_slice(), secret.as_slice());
        assert_eq!(format!("{split:?}"), "Split(..)");
        assert!(split.equals(secret));
        assert!(!split.equals(&secret[1..]));
        assert!(split.starts_with(b"latch_p_"));
        assert!(!split.starts_with(b"latch_t_"));
        assert_eq!(split.byte(6), b'p');
        assert_eq!(split.len(), secret.len());
    }

    #[test]
    fn refuses_a_short_pad() {
        assert!(Split::new(b"secret", Zeroizing::new(vec![1, 2])).is_none());
    }
}
