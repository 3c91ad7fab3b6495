//! The child's environment plan (DESIGN §6 "Credentials never reach the child", "Environment",
//! "File secrets"): which variables the command gets, decided as plain data before anything is
//! spawned.
//!
//! The plan never holds a secret value: a delivered secret appears as an index into the
//! caller's list of delivered secrets, and the launcher turns the plan into a process at one
//! point. That keeps values in one place (the caller's zeroizing containers) and keeps this
//! logic pure and testable.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;

use super::name::SecretName;

/// Variables kept by `--pristine` (`LC_*` is matched by prefix).
pub const PRISTINE_BASE: [&str; 9] = [
    "PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "TERM", "TZ", "TMPDIR",
];

/// Prefix of the launcher's own settings, none of which reaches the child.
pub const SETTINGS_PREFIX: &str = "LATCH_";

/// Where a variable's value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// Inherited from the launcher's environment, unchanged.
    Inherited(OsString),
    /// The value of delivered secret number `i`.
    Secret(usize),
    /// The path of the file holding delivered secret number `i` (`--secret-file`).
    File(usize),
}

/// The options that shape the plan.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[allow(clippy::struct_excessive_bools)] // independent switches
pub struct Options {
    /// Start from [`PRISTINE_BASE`] instead of the whole inherited environment.
    pub pristine: bool,
    /// Keep an inherited variable when a secret has the same name.
    pub preserve_env: bool,
}

/// The child's environment, in order: inherited variables first, then secrets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EnvPlan {
    /// Name and source of every variable the child gets.
    pub vars: Vec<(OsString, Source)>,
    /// Inherited variables a secret replaced (the launcher warns, naming each).
    pub replaced: Vec<String>,
    /// Secrets not injected because `--preserve-env` kept the inherited variable.
    pub preserved: Vec<String>,
    /// Launcher settings removed from the child's environment (names only).
    pub removed: Vec<String>,
    /// `--secret-file` names that were not delivered (no file is written for them).
    pub unfiled: Vec<SecretName>,
}

/// Plans the child's environment from the launcher's own (`inherited`), the names of the
/// delivered secrets (in delivery order) and the `--secret-file` names.
#[must_use]
pub fn plan_env<I>(
    inherited: I,
    delivered: &[SecretName],
    files: &[SecretName],
    options: Options,
) -> EnvPlan
where
    I: IntoIterator<Item = (OsString, OsString)>,
{
    let mut plan = EnvPlan::default();
    for (name, value) in inherited {
        if name.as_bytes().starts_with(SETTINGS_PREFIX.as_bytes()) {
            plan.removed.push(name.to_string_lossy().into_owned());
            continue;
        }
        if options.pristine && !in_pristine_base(&name) {
            continue;
        }
        plan.vars.push((name, Source::Inherited(value)));
    }
    for (index, secret) in delivered.iter().enumerate() {
        let source = if files.contains(secret) {
            Source::File(index)
        } else {
            Source::Secret(index)
        };
        let name = OsStr::new(secret.as_str());
        match plan.vars.iter().position(|(n, _)| n == name) {
            Some(_) if options.preserve_env => plan.preserved.push(secret.as_str().to_owned()),
            Some(at) => {
                plan.replaced.push(secret.as_str().to_owned());
                plan.vars[at].1 = source;
            }
            None => plan.vars.push((name.to_owned(), source)),
        }
    }
    plan.unfiled = files
        .iter()
        .filter(|f| !delivered.contains(f))
        .cloned()
        .collect();
    plan
}

fn in_pristine_base(name: &OsStr) -> bool {
    let bytes = name.as_bytes();
    bytes.starts_with(b"LC_") || PRISTINE_BASE.iter().any(|b| b.as_bytes() == bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<SecretName> {
        list.iter()
            .map(|n| SecretName::new(*n).expect("valid"))
            .collect()
    }

    fn env(list: &[(&str, &str)]) -> Vec<(OsString, OsString)> {
        list.iter()
            .map(|(k, v)| (OsString::from(k), OsString::from(v)))
            .collect()
    }

    fn var<'a>(plan: &'a EnvPlan, name: &str) -> Option<&'a Source> {
        plan.vars
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, source)| source)
    }

    #[test]
    fn launcher_settings_never_reach_the_child() {
        let plan = plan_env(
            env(&[
                ("LATCH_API_KEY", "k"),
                ("LATCH_API_KEY_FILE", "/k"),
                ("LATCH_URL", "http://x"),
                ("HOME", "/root"),
                ("latch_lower", "kept: names are case-sensitive"),
            ]),
            &[],
            &[],
            Options::default(),
        );
        assert_eq!(
            plan.removed,
            ["LATCH_API_KEY", "LATCH_API_KEY_FILE", "LATCH_URL"]
        );
        assert!(var(&plan, "LATCH_API_KEY").is_none());
        assert!(var(&plan, "HOME").is_some());
        assert!(var(&plan, "latch_lower").is_some());
    }

    #[test]
    fn pristine_keeps_only_the_base_set() {
        let plan = plan_env(
            env(&[
                ("PATH", "/bin"),
                ("LC_ALL", "C"),
                ("AWS_PROFILE", "prod"),
                ("TERM", "xterm"),
                ("LATCH_API_KEY", "k"),
            ]),
            &names(&["TOKEN"]),
            &[],
            Options {
                pristine: true,
                ..Options::default()
            },
        );
        let kept: Vec<_> = plan.vars.iter().map(|(n, _)| n.clone()).collect();
        assert_eq!(kept, ["PATH", "LC_ALL", "TERM", "TOKEN"]);
    }

    #[test]
    fn a_secret_replaces_an_inherited_variable_and_says_so() {
        let plan = plan_env(
            env(&[("GITHUB_TOKEN", "old"), ("HOME", "/h")]),
            &names(&["GITHUB_TOKEN", "NEW"]),
            &[],
            Options::default(),
        );
        assert_eq!(var(&plan, "GITHUB_TOKEN"), Some(&Source::Secret(0)));
        assert_eq!(var(&plan, "NEW"), Some(&Source::Secret(1)));
        assert_eq!(plan.replaced, ["GITHUB_TOKEN"]);
        // The replaced variable keeps its place; no duplicate name.
        assert_eq!(plan.vars.len(), 3);
        assert_eq!(plan.vars[0].0, "GITHUB_TOKEN");
    }

    #[test]
    fn preserve_env_keeps_the_inherited_value() {
        let plan = plan_env(
            env(&[("GITHUB_TOKEN", "old")]),
            &names(&["GITHUB_TOKEN"]),
            &[],
            Options {
                preserve_env: true,
                ..Options::default()
            },
        );
        assert_eq!(
            var(&plan, "GITHUB_TOKEN"),
            Some(&Source::Inherited("old".into()))
        );
        assert_eq!(plan.preserved, ["GITHUB_TOKEN"]);
        assert!(plan.replaced.is_empty());
    }

    #[test]
    fn file_secrets_become_paths_and_undelivered_ones_are_reported() {
        let plan = plan_env(
            env(&[]),
            &names(&["KEY_PEM", "TOKEN"]),
            &names(&["KEY_PEM", "token", "ABSENT"]),
            Options::default(),
        );
        assert_eq!(var(&plan, "KEY_PEM"), Some(&Source::File(0)));
        // Names are exact: `token` names no delivered secret.
        assert_eq!(var(&plan, "TOKEN"), Some(&Source::Secret(1)));
        assert_eq!(plan.unfiled, names(&["token", "ABSENT"]));
    }
}
