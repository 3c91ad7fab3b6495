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

use serde::{Deserialize, Serialize};

/// Longest secret name, in bytes (DESIGN §5).
pub const MAX_SECRET_NAME_LEN: usize = 128;

/// Longest label, in bytes.
pub const MAX_LABEL_LEN: usize = 64;

/// Why a secret name is refused (DESIGN §5): a secret becomes an environment variable of the
/// child, and these variables change what the child runs, trusts or talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Loader, interpreter and shell hooks, helper programs (`LD_PRELOAD`, `PAGER`, ...).
    LoadsCode,
    /// CA and TLS settings (`SSL_CERT_FILE`, `NODE_TLS_REJECT_UNAUTHORIZED`, ...).
    Trust,
    /// Proxies and name resolution (`HTTPS_PROXY`, `HOSTALIASES`, ...).
    Connect,
    /// latch's own settings (`LATCH_*`).
    Latch,
}

impl Refusal {
    /// The reason, as the error message and the API say it.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::LoadsCode => "changes how programs load code",
            Self::Trust => "changes whom programs trust",
            Self::Connect => "changes where programs connect",
            Self::Latch => "reserved for latch",
        }
    }
}

/// Refused secret names, compared ignoring ASCII case; a trailing `*` makes a prefix family.
/// DESIGN §5's list, plus `BASHOPTS` (the same kind of shell hook as `SHELLOPTS`) and glibc's
/// resolver settings `RES_OPTIONS` and `LOCALDOMAIN` (the same kind as `RESOLV_*`).
const REFUSED: &[(&str, Refusal)] = {
    use Refusal::{Connect, Latch, LoadsCode, Trust};
    &[
        ("LD_*", LoadsCode),
        ("DYLD_*", LoadsCode),
        ("GLIBC_TUNABLES", LoadsCode),
        ("GCONV_PATH", LoadsCode),
        ("LOCPATH", LoadsCode),
        ("MALLOC_*", LoadsCode),
        ("HOSTALIASES", Connect),
        ("RESOLV_*", Connect),
        ("RES_OPTIONS", Connect),
        ("LOCALDOMAIN", Connect),
        ("BASH_ENV", LoadsCode),
        ("ENV", LoadsCode),
        ("BASH_FUNC_*", LoadsCode),
        ("SHELLOPTS", LoadsCode),
        ("BASHOPTS", LoadsCode),
        ("PS4", LoadsCode),
        ("PROMPT_COMMAND", LoadsCode),
        ("IFS", LoadsCode),
        ("CDPATH", LoadsCode),
        ("PATH", LoadsCode),
        ("HOME", LoadsCode),
        ("SHELL", LoadsCode),
        ("TMPDIR", LoadsCode),
        ("NODE_OPTIONS", LoadsCode),
        ("NODE_PATH", LoadsCode),
        ("NODE_EXTRA_CA_CERTS", Trust),
        ("NODE_TLS_REJECT_UNAUTHORIZED", Trust),
        ("NODE_USE_ENV_PROXY", Connect),
        ("PYTHONPATH", LoadsCode),
        ("PYTHONSTARTUP", LoadsCode),
        ("PYTHONHOME", LoadsCode),
        ("PYTHONINSPECT", LoadsCode),
        ("PYTHONWARNINGS", LoadsCode),
        ("PYTHONBREAKPOINT", LoadsCode),
        ("PERL5OPT", LoadsCode),
        ("PERL5LIB", LoadsCode),
        ("PERLLIB", LoadsCode),
        ("RUBYOPT", LoadsCode),
        ("RUBYLIB", LoadsCode),
        ("JAVA_TOOL_OPTIONS", LoadsCode),
        ("_JAVA_OPTIONS", LoadsCode),
        ("JDK_JAVA_OPTIONS", LoadsCode),
        ("GIT_SSH_COMMAND", LoadsCode),
        ("GIT_SSH", LoadsCode),
        ("GIT_EXEC_PATH", LoadsCode),
        ("GIT_CONFIG_*", LoadsCode),
        ("GIT_ASKPASS", LoadsCode),
        ("SSH_ASKPASS", LoadsCode),
        ("LESSOPEN", LoadsCode),
        ("LESSCLOSE", LoadsCode),
        ("PAGER", LoadsCode),
        ("EDITOR", LoadsCode),
        ("VISUAL", LoadsCode),
        ("BROWSER", LoadsCode),
        ("SSL_CERT_FILE", Trust),
        ("SSL_CERT_DIR", Trust),
        ("REQUESTS_CA_BUNDLE", Trust),
        ("CURL_CA_BUNDLE", Trust),
        ("HTTP_PROXY", Connect),
        ("HTTPS_PROXY", Connect),
        ("ALL_PROXY", Connect),
        ("NO_PROXY", Connect),
        ("LATCH_*", Latch),
    ]
};

/// The refused names (`*` ends a prefix family), compared ignoring ASCII case: for the API
/// document's pattern.
#[must_use]
pub fn refused_patterns() -> Vec<&'static str> {
    REFUSED.iter().map(|&(pattern, _)| pattern).collect()
}

/// Why `name` may never be a secret's name, if it is refused (DESIGN §5).
#[must_use]
pub fn refusal(name: &str) -> Option<Refusal> {
    REFUSED.iter().find_map(|&(pattern, why)| {
        let hit = match pattern.strip_suffix('*') {
            Some(prefix) => {
                name.len() >= prefix.len()
                    && name.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
            }
            None => pattern.eq_ignore_ascii_case(name),
        };
        hit.then_some(why)
    })
}

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
    /// The name is one a secret may never take (DESIGN §5).
    #[error("`{name}` is refused as a secret name: it {}; choose another name", .reason.as_str())]
    Refused {
        /// The refused name.
        name: String,
        /// Why.
        reason: Refusal,
    },
}

/// The name of a secret: the environment variable it is injected as.
///
/// Matches `^[A-Za-z_][A-Za-z0-9_]*$`, at most 128 bytes, and is not a refused name.
/// Equality and hashing are exact (DESIGN §2: a secret is delivered under its own spelling, and
/// only that spelling names it); uniqueness within a scope ignores ASCII case, which the store
/// enforces with [`SecretName::folded`]. Ordering is by the folded name, then by spelling, so
/// listings sort as people expect and stay consistent with equality.
#[derive(Clone, PartialEq, Eq, Hash, Deserialize)]
#[serde(try_from = "String")]
pub struct SecretName(String);

impl SecretName {
    /// Validates `name` as a secret name.
    ///
    /// # Errors
    /// [`NameError`] says which rule the name breaks.
    pub fn new(name: impl Into<String>) -> Result<Self, NameError> {
        let name = Self::syntax(name.into())?;
        if let Some(reason) = refusal(&name.0) {
            return Err(NameError::Refused {
                name: name.0,
                reason,
            });
        }
        Ok(name)
    }

    /// A name read back from the store: its syntax is checked, but not the refused names,
    /// which have grown over time (a secret stored under a name refused since stays readable,
    /// listable and deletable; resolution never delivers it, see [`SecretName::refusal`]).
    ///
    /// # Errors
    /// [`NameError`] for a name that is not even a variable name.
    pub fn stored(name: impl Into<String>) -> Result<Self, NameError> {
        Self::syntax(name.into())
    }

    /// Why this name is refused today, if it is (only a [`SecretName::stored`] name can be).
    #[must_use]
    pub fn refusal(&self) -> Option<Refusal> {
        refusal(&self.0)
    }

    /// The name with ASCII letters lower-cased: what uniqueness within a scope compares.
    #[must_use]
    pub fn folded(&self) -> String {
        self.0.to_ascii_lowercase()
    }

    /// Whether two names are the same ignoring ASCII case.
    #[must_use]
    pub fn same_folded(&self, other: &Self) -> bool {
        self.0.eq_ignore_ascii_case(&other.0)
    }

    fn syntax(name: String) -> Result<Self, NameError> {
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
        Ok(Self(name))
    }

    /// The name as written when it was created.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
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

impl Ord for SecretName {
    /// Byte order of the ASCII-lowercased names, then of the spellings (a plain loop:
    /// resolution sorts hundreds).
    fn cmp(&self, other: &Self) -> Ordering {
        let (a, b) = (self.0.as_bytes(), other.0.as_bytes());
        for (x, y) in a.iter().zip(b) {
            let (x, y) = (x.to_ascii_lowercase(), y.to_ascii_lowercase());
            if x != y {
                return x.cmp(&y);
            }
        }
        a.len().cmp(&b.len()).then_with(|| a.cmp(b))
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
    fn refuses_names_that_change_what_programs_run_trust_or_reach_with_the_reason() {
        for (refused, reason) in [
            ("LD_PRELOAD", "changes how programs load code"),
            ("ld_preload", "changes how programs load code"),
            ("LD_AUDIT", "changes how programs load code"),
            ("DYLD_INSERT_LIBRARIES", "changes how programs load code"),
            ("GLIBC_TUNABLES", "changes how programs load code"),
            ("MALLOC_CHECK_", "changes how programs load code"),
            ("BASH_FUNC_x%%", "changes how programs load code"),
            ("BASH_ENV", "changes how programs load code"),
            ("env", "changes how programs load code"),
            ("PS4", "changes how programs load code"),
            ("Path", "changes how programs load code"),
            ("TMPDIR", "changes how programs load code"),
            ("GIT_CONFIG_COUNT", "changes how programs load code"),
            ("GIT_ASKPASS", "changes how programs load code"),
            ("pager", "changes how programs load code"),
            ("EDITOR", "changes how programs load code"),
            ("PYTHONBREAKPOINT", "changes how programs load code"),
            ("JAVA_TOOL_OPTIONS", "changes how programs load code"),
            ("SSL_CERT_FILE", "changes whom programs trust"),
            ("NODE_EXTRA_CA_CERTS", "changes whom programs trust"),
            (
                "node_tls_reject_unauthorized",
                "changes whom programs trust",
            ),
            ("REQUESTS_CA_BUNDLE", "changes whom programs trust"),
            ("HTTPS_PROXY", "changes where programs connect"),
            ("https_proxy", "changes where programs connect"),
            ("no_proxy", "changes where programs connect"),
            ("NODE_USE_ENV_PROXY", "changes where programs connect"),
            ("HOSTALIASES", "changes where programs connect"),
            ("RES_OPTIONS", "changes where programs connect"),
            ("LOCALDOMAIN", "changes where programs connect"),
            ("RESOLV_HOST_CONF", "changes where programs connect"),
            ("LATCH_API_KEY", "reserved for latch"),
            ("latch_anything", "reserved for latch"),
        ] {
            let result = SecretName::new(refused.replace('%', ""));
            if reason == "none" {
                assert!(result.is_ok(), "{refused}");
                continue;
            }
            let err = result.expect_err(refused);
            assert!(
                matches!(err, NameError::Refused { .. }),
                "{refused}: {err:?}"
            );
            let message = err.to_string();
            assert!(
                message.contains(&refused.replace('%', "")),
                "names it: {message}"
            );
            assert!(message.contains(reason), "{refused}: {message}");
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
            "EDITORS",
            "HTTP_PROXY_URL",
            "SHELL_NAME",
            "PS41",
        ] {
            assert!(SecretName::new(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn a_stored_name_refused_since_still_reads_and_says_why() {
        let old = SecretName::stored("EDITOR").expect("a variable name");
        assert_eq!(old.refusal(), Some(Refusal::LoadsCode));
        assert_eq!(name("EDITOR_THEME").refusal(), None);
        assert!(SecretName::stored("A-B").is_err(), "the syntax still holds");
    }

    #[test]
    fn secret_names_are_equal_only_as_spelled_and_fold_for_uniqueness() {
        assert_ne!(name("Api_Key"), name("API_KEY"), "exact (DESIGN §2)");
        assert!(name("Api_Key").same_folded(&name("API_KEY")));
        assert_eq!(name("Api_Key").folded(), "api_key");
        assert!(!name("API_KEY").same_folded(&name("API_KEY2")));
        let set: HashSet<SecretName> = [name("token"), name("TOKEN"), name("token")].into();
        assert_eq!(set.len(), 2);
        assert_eq!(
            name("a").cmp(&name("B")),
            Ordering::Less,
            "sorted ignoring case"
        );
        assert_eq!(name("b").cmp(&name("A")), Ordering::Greater);
        assert_eq!(
            name("TOKEN").cmp(&name("token")),
            Ordering::Less,
            "then by spelling"
        );
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
        fn order_sorts_ignoring_case_and_agrees_with_equality(
            a in "[A-Za-z_][A-Za-z0-9_]{0,12}",
            b in "[A-Za-z_][A-Za-z0-9_]{0,12}",
        ) {
            prop_assume!(refusal(&a).is_none() && refusal(&b).is_none());
            let folded = a.to_ascii_lowercase().cmp(&b.to_ascii_lowercase());
            let (x, y) = (SecretName::new(a.clone()).expect("valid"), SecretName::new(b.clone()).expect("valid"));
            if folded != Ordering::Equal {
                prop_assert_eq!(x.cmp(&y), folded);
            }
            prop_assert_eq!(x.cmp(&y) == Ordering::Equal, a == b);
            prop_assert_eq!(x == y, a == b);
            prop_assert_eq!(x.same_folded(&y), folded == Ordering::Equal);
        }
    }
}
