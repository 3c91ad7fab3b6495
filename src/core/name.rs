//! Names: secret names (environment variable names injected into runs) and labels (team, user,
//! environment and identity names).
//!
//! A secret name is also an environment variable name, so it is validated against what a shell
//! accepts and against the variables that change how programs load code: a secret must never be
//! able to redirect the child's dynamic loader or interpreter (DESIGN §5). Identity is
//! case-insensitive (`Api_Key` and `API_KEY` are the same secret) because the store keeps names
//! unique case-insensitively within a scope; the spelling is kept for display and injection.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};

use serde::{Deserialize, Serialize};

/// Longest secret name, in bytes (DESIGN §5).
pub const MAX_SECRET_NAME_LEN: usize = 128;

/// Longest label, in bytes.
pub const MAX_LABEL_LEN: usize = 64;

/// Exact names refused as secret names, compared ignoring ASCII case. The first group is DESIGN
/// §5's list; the second holds further loader and interpreter hooks of the same kind, refused
/// because the safer reading of "names that change how programs load code" includes them.
const REFUSED_EXACT: &[&str] = &[
    "LD_PRELOAD",
    "LD_LIBRARY_PATH",
    "BASH_ENV",
    "ENV",
    "NODE_OPTIONS",
    "PYTHONPATH",
    "PYTHONSTARTUP",
    "PERL5OPT",
    "GIT_SSH_COMMAND",
    "PATH",
    "HOME",
    // Same kind, beyond DESIGN's list.
    "PYTHONHOME",
    "PERL5LIB",
    "PERLLIB",
    "RUBYOPT",
    "RUBYLIB",
    "NODE_PATH",
    "JAVA_TOOL_OPTIONS",
    "_JAVA_OPTIONS",
    "JDK_JAVA_OPTIONS",
    "GCONV_PATH",
    "SHELLOPTS",
    "BASHOPTS",
    "PROMPT_COMMAND",
    "IFS",
];

/// Prefixes refused as secret names, compared ignoring ASCII case: the dynamic loaders' whole
/// families (`LD_AUDIT`, `DYLD_INSERT_LIBRARIES`, ...) and latch's own settings.
const REFUSED_PREFIXES: &[&str] = &["LD_", "DYLD_", "LATCH_"];

/// Why a name was refused. Names are not secret, so the messages quote them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// The name is empty.
    #[error("the name is empty")]
    Empty,
    /// The name is longer than allowed.
    #[error("the name is {len} bytes long; at most {max} are allowed")]
    TooLong {
        /// Length of the refused name in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The name starts with a character that may not start it.
    #[error("`{name}` must start with {allowed}")]
    BadStart {
        /// The refused name.
        name: String,
        /// What may start it.
        allowed: &'static str,
    },
    /// The name holds a character outside its alphabet.
    #[error("`{name}` holds {found:?} at byte {at}; only {allowed} are allowed")]
    BadChar {
        /// The refused name.
        name: String,
        /// The first offending character.
        found: char,
        /// Its byte offset.
        at: usize,
        /// The alphabet.
        allowed: &'static str,
    },
    /// The name is one that changes how programs load code, or one of latch's own settings.
    #[error(
        "`{name}` is refused as a secret name: it changes how programs load code or configures \
         latch itself; choose another name"
    )]
    Refused {
        /// The refused name.
        name: String,
    },
}

/// The name of a secret: the environment variable it is injected as.
///
/// Matches `^[A-Za-z_][A-Za-z0-9_]*$`, at most 128 bytes, and is not a refused name. Equality,
/// ordering and hashing ignore ASCII case; [`SecretName::as_str`] keeps the spelling.
#[derive(Clone, Deserialize)]
#[serde(try_from = "String")]
pub struct SecretName(String);

impl SecretName {
    /// Validates `name` as a secret name.
    ///
    /// # Errors
    /// [`NameError`] says which rule the name breaks.
    pub fn new(name: impl Into<String>) -> Result<Self, NameError> {
        let name = name.into();
        if name.is_empty() {
            return Err(NameError::Empty);
        }
        if name.len() > MAX_SECRET_NAME_LEN {
            return Err(NameError::TooLong {
                len: name.len(),
                max: MAX_SECRET_NAME_LEN,
            });
        }
        for (at, c) in name.char_indices() {
            let ok = c.is_ascii_alphanumeric() || c == '_';
            if !ok {
                let allowed = "ASCII letters, digits and `_`";
                return Err(NameError::BadChar {
                    name,
                    found: c,
                    at,
                    allowed,
                });
            }
            if at == 0 && c.is_ascii_digit() {
                return Err(NameError::BadStart {
                    name,
                    allowed: "a letter or `_`",
                });
            }
        }
        if is_refused(&name) {
            return Err(NameError::Refused { name });
        }
        Ok(Self(name))
    }

    /// The name as written when it was created.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Whether a (syntactically valid) name is one a secret may never take.
fn is_refused(name: &str) -> bool {
    REFUSED_EXACT.iter().any(|r| r.eq_ignore_ascii_case(name))
        || REFUSED_PREFIXES.iter().any(|p| {
            name.len() >= p.len() && name.as_bytes()[..p.len()].eq_ignore_ascii_case(p.as_bytes())
        })
}

impl TryFrom<String> for SecretName {
    type Error = NameError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl std::str::FromStr for SecretName {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl From<SecretName> for String {
    fn from(value: SecretName) -> Self {
        value.0
    }
}

impl PartialEq for SecretName {
    fn eq(&self, other: &Self) -> bool {
        self.0.eq_ignore_ascii_case(&other.0)
    }
}

impl Eq for SecretName {}

impl Hash for SecretName {
    fn hash<H: Hasher>(&self, state: &mut H) {
        for b in self.0.bytes() {
            state.write_u8(b.to_ascii_lowercase());
        }
        state.write_u8(0xff);
    }
}

impl Ord for SecretName {
    /// Byte order of the ASCII-lowercased names (a plain loop: resolution sorts hundreds).
    fn cmp(&self, other: &Self) -> Ordering {
        let (a, b) = (self.0.as_bytes(), other.0.as_bytes());
        for (x, y) in a.iter().zip(b) {
            let (x, y) = (x.to_ascii_lowercase(), y.to_ascii_lowercase());
            if x != y {
                return x.cmp(&y);
            }
        }
        a.len().cmp(&b.len())
    }
}

impl PartialOrd for SecretName {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Serialized as its spelling, without a copy (records name many secrets).
impl Serialize for SecretName {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl fmt::Display for SecretName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for SecretName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretName({})", self.0)
    }
}

/// The name of a team, user, environment or agent identity: `^[A-Za-z0-9][A-Za-z0-9._-]*$`, at
/// most 64 bytes, case-sensitive. Kept narrow so it is safe in URL paths, logs and tables.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(try_from = "String")]
pub struct Label(String);

impl Label {
    /// Validates `label`.
    ///
    /// # Errors
    /// [`NameError`] says which rule the label breaks.
    pub fn new(label: impl Into<String>) -> Result<Self, NameError> {
        let label = label.into();
        if label.is_empty() {
            return Err(NameError::Empty);
        }
        if label.len() > MAX_LABEL_LEN {
            return Err(NameError::TooLong {
                len: label.len(),
                max: MAX_LABEL_LEN,
            });
        }
        for (at, c) in label.char_indices() {
            if !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')) {
                return Err(NameError::BadChar {
                    name: label,
                    found: c,
                    at,
                    allowed: "ASCII letters, digits, `.`, `_` and `-`",
                });
            }
            if at == 0 && !c.is_ascii_alphanumeric() {
                return Err(NameError::BadStart {
                    name: label,
                    allowed: "a letter or digit",
                });
            }
        }
        Ok(Self(label))
    }

    /// The label.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Label {
    type Error = NameError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl std::str::FromStr for Label {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl From<Label> for String {
    fn from(value: Label) -> Self {
        value.0
    }
}

impl Serialize for Label {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl fmt::Display for Label {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Label {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Label({})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn name(s: &str) -> SecretName {
        SecretName::new(s).expect("valid name")
    }

    #[test]
    fn accepts_valid_secret_names() {
        for ok in [
            "A",
            "_",
            "_x",
            "OPENAI_API_KEY",
            "a1",
            "db_password_2",
            "LDAP_URL",
            "LATCHKEY",
        ] {
            assert_eq!(name(ok).as_str(), ok);
        }
        let longest = "A".repeat(MAX_SECRET_NAME_LEN);
        assert!(SecretName::new(longest).is_ok());
    }

    #[test]
    fn refuses_malformed_secret_names() {
        type Check = fn(&NameError) -> bool;
        let cases: &[(&str, Check)] = &[
            ("", |e| matches!(e, NameError::Empty)),
            ("1ABC", |e| matches!(e, NameError::BadStart { .. })),
            ("A-B", |e| {
                matches!(
                    e,
                    NameError::BadChar {
                        found: '-',
                        at: 1,
                        ..
                    }
                )
            }),
            ("A B", |e| {
                matches!(e, NameError::BadChar { found: ' ', .. })
            }),
            ("A=B", |e| {
                matches!(e, NameError::BadChar { found: '=', .. })
            }),
            ("A\0B", |e| {
                matches!(e, NameError::BadChar { found: '\0', .. })
            }),
            ("ÄPI", |e| {
                matches!(
                    e,
                    NameError::BadChar {
                        found: 'Ä',
                        at: 0,
                        ..
                    }
                )
            }),
            ("KEY\n", |e| {
                matches!(e, NameError::BadChar { found: '\n', .. })
            }),
        ];
        for (input, check) in cases {
            let err = SecretName::new(*input).expect_err(input);
            assert!(check(&err), "{input:?} gave {err:?}");
        }
        let too_long = "A".repeat(MAX_SECRET_NAME_LEN + 1);
        let err = SecretName::new(too_long).expect_err("too long");
        assert_eq!(err, NameError::TooLong { len: 129, max: 128 });
    }

    #[test]
    fn refuses_names_that_change_how_programs_load_code() {
        for refused in [
            "LD_PRELOAD",
            "ld_preload",
            "LD_LIBRARY_PATH",
            "LD_AUDIT",
            "DYLD_INSERT_LIBRARIES",
            "dyld_library_path",
            "BASH_ENV",
            "ENV",
            "env",
            "NODE_OPTIONS",
            "PYTHONPATH",
            "PYTHONSTARTUP",
            "PERL5OPT",
            "GIT_SSH_COMMAND",
            "PATH",
            "Path",
            "HOME",
            "LATCH_API_KEY",
            "LATCH_URL",
            "latch_anything",
            "JAVA_TOOL_OPTIONS",
        ] {
            let err = SecretName::new(refused).expect_err(refused);
            assert!(
                matches!(err, NameError::Refused { .. }),
                "{refused}: {err:?}"
            );
            assert!(err.to_string().contains(refused), "message names it: {err}");
        }
        // Near misses are ordinary names.
        for ok in [
            "PATHS",
            "HOMEDIR",
            "ENVIRONMENT",
            "LATCH",
            "LD",
            "MY_PATH",
            "LDAP",
        ] {
            assert!(SecretName::new(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn secret_name_identity_ignores_ascii_case() {
        assert_eq!(name("Api_Key"), name("API_KEY"));
        assert_ne!(name("API_KEY"), name("API_KEY2"));
        let set: HashSet<SecretName> = [name("token"), name("TOKEN"), name("Token")].into();
        assert_eq!(set.len(), 1);
        assert_eq!(name("a").cmp(&name("B")), Ordering::Less);
        assert_eq!(name("b").cmp(&name("A")), Ordering::Greater);
        assert_eq!(name("Token").to_string(), "Token", "spelling is kept");
    }

    #[test]
    fn secret_name_serde_validates() {
        let ok: SecretName = serde_json::from_str(r#""GOOD_NAME""#).expect("valid");
        assert_eq!(ok.as_str(), "GOOD_NAME");
        let err = serde_json::from_str::<SecretName>(r#""LD_PRELOAD""#).expect_err("refused");
        assert!(err.to_string().contains("refused"), "{err}");
        assert!(serde_json::from_str::<SecretName>("17").is_err());
        assert_eq!(
            serde_json::to_string(&name("X_1")).expect("serialises"),
            r#""X_1""#
        );
    }

    #[test]
    fn labels() {
        for ok in ["default", "ci", "prod-eu.1", "A_b", "0team"] {
            assert_eq!(Label::new(ok).expect(ok).as_str(), ok);
        }
        for bad in ["", "-x", ".x", "a b", "a/b", "a%2f", "é", &"x".repeat(65)] {
            assert!(Label::new(bad).is_err(), "{bad:?}");
        }
        assert_ne!(
            Label::new("CI").ok(),
            Label::new("ci").ok(),
            "labels are case-sensitive"
        );
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn secret_names_never_panic_and_accepted_ones_are_shell_names(text in "\\PC{0,140}") {
            if let Ok(name) = SecretName::new(text.clone()) {
                let first = text.as_bytes()[0];
                prop_assert!(first == b'_' || first.is_ascii_alphabetic());
                prop_assert!(text.bytes().all(|b| b == b'_' || b.is_ascii_alphanumeric()));
                prop_assert!(text.len() <= MAX_SECRET_NAME_LEN);
                prop_assert_eq!(name.as_str(), text.as_str());
            }
        }

        #[test]
        fn case_variants_are_one_secret(text in "[A-Za-z_][A-Za-z0-9_]{0,30}") {
            prop_assume!(!is_refused(&text));
            let lower = SecretName::new(text.to_ascii_lowercase()).expect("valid");
            let upper = SecretName::new(text.to_ascii_uppercase()).expect("valid");
            prop_assert_eq!(lower, upper);
        }

        #[test]
        fn order_is_the_order_of_the_lowercased_names(
            a in "[A-Za-z_][A-Za-z0-9_]{0,12}",
            b in "[A-Za-z_][A-Za-z0-9_]{0,12}",
        ) {
            prop_assume!(!is_refused(&a) && !is_refused(&b));
            let expected = a.to_ascii_lowercase().cmp(&b.to_ascii_lowercase());
            let (x, y) = (SecretName::new(a).expect("valid"), SecretName::new(b).expect("valid"));
            prop_assert_eq!(x.cmp(&y), expected);
            prop_assert_eq!(x == y, expected == Ordering::Equal);
        }
    }
}
