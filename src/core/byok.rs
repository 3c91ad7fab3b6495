//! Bring your own provider key (DESIGN §14), the pure part: the providers and their variables,
//! whether a run is local enough to use a device key, how a provider's refusal is classified,
//! and the store's plaintext.
//!
//! The local-run rule is not a security boundary (the keys exist only on the device anyway): it
//! stops a device key from being used by accident, on a CI runner on a laptop or in a
//! devcontainer that mounts `$HOME`. It takes every input explicitly (environment variables,
//! container signs, key kind, trigger, team setting), so its table of tests does not depend on
//! the machine it runs on, and the server applies the same function to what it knows.

use std::fmt;

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::apikey::KeyKind;
use super::broker::Preset;
use super::resolve::Trigger;

/// A model provider whose key a developer may bring.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    /// OpenAI: `OPENAI_API_KEY`.
    Openai,
    /// Anthropic: `ANTHROPIC_API_KEY`.
    Anthropic,
    /// Google Gemini: `GEMINI_API_KEY` (and `GOOGLE_API_KEY`, which google-genai prefers).
    Gemini,
}

/// Why a BYOK input was refused. Never holds a key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ByokError {
    /// Not a provider latch knows.
    #[error("unknown provider `{0}`: the providers are openai, anthropic and gemini")]
    UnknownProvider(String),
    /// The key is empty.
    #[error("the key is empty")]
    Empty,
    /// The key is not one token of printable ASCII.
    #[error(
        "a provider key is one token of printable ASCII (no spaces, quotes or control \
         characters); check that the whole key and nothing else was given"
    )]
    NotAToken,
    /// The key is implausibly short or long.
    #[error("a provider key is {min} to {max} characters; this one has {0}", min = MIN_KEY, max = MAX_KEY)]
    Length(usize),
    /// The store's plaintext does not parse.
    #[error("the store's content is not a BYOK store (version {0})")]
    StoreFormat(u32),
    /// The store's plaintext is not JSON of the expected shape.
    #[error("the store's content does not parse")]
    StoreParse,
}

/// Shortest key accepted (the shortest real provider keys are ~39 characters).
const MIN_KEY: usize = 20;
/// Longest key accepted.
const MAX_KEY: usize = 512;

impl Provider {
    /// Every provider.
    pub const ALL: [Self; 3] = [Self::Openai, Self::Anthropic, Self::Gemini];

    /// Its name on the command line: its broker preset's.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        self.preset().as_str()
    }

    /// Its name in messages.
    #[must_use]
    pub const fn title(self) -> &'static str {
        match self {
            Self::Openai => "OpenAI",
            Self::Anthropic => "Anthropic",
            Self::Gemini => "Google Gemini",
        }
    }

    /// The variable its SDKs read the key from: the name of the team secret a device key
    /// stands in for.
    #[must_use]
    pub const fn variable(self) -> &'static str {
        match self {
            Self::Openai => "OPENAI_API_KEY",
            Self::Anthropic => "ANTHROPIC_API_KEY",
            Self::Gemini => "GEMINI_API_KEY",
        }
    }

    /// Other variables its SDKs read the same key from, set to the same value so that an SDK's
    /// precedence never picks a stale inherited one (google-genai prefers `GOOGLE_API_KEY`).
    #[must_use]
    pub const fn also(self) -> &'static [&'static str] {
        match self {
            Self::Gemini => &["GOOGLE_API_KEY"],
            Self::Openai | Self::Anthropic => &[],
        }
    }

    /// The broker preset of its API.
    #[must_use]
    pub const fn preset(self) -> Preset {
        match self {
            Self::Openai => Preset::Openai,
            Self::Anthropic => Preset::Anthropic,
            Self::Gemini => Preset::Gemini,
        }
    }

    /// The provider whose variable `name` is.
    #[must_use]
    pub fn of_variable(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.variable() == name)
    }

    /// Parses a provider's name (`google` is Gemini).
    ///
    /// # Errors
    /// [`ByokError::UnknownProvider`].
    pub fn parse(text: &str) -> Result<Self, ByokError> {
        match text.to_ascii_lowercase().as_str() {
            "openai" => Ok(Self::Openai),
            "anthropic" | "claude" => Ok(Self::Anthropic),
            "gemini" | "google" => Ok(Self::Gemini),
            _ => Err(ByokError::UnknownProvider(
                text.chars().take(40).collect::<String>(),
            )),
        }
    }

    /// The cheapest authenticated request, for `latch byok test`: the path of its model list
    /// on its API host (free, and refused without a valid key).
    #[must_use]
    pub const fn check_path(self) -> &'static str {
        match self {
            Self::Openai | Self::Anthropic => "/v1/models?limit=1",
            Self::Gemini => "/v1beta/models?pageSize=1",
        }
    }

    /// How its keys usually begin, to warn (not refuse) about a key given to the wrong
    /// provider.
    #[must_use]
    pub const fn usual_prefix(self) -> &'static str {
        match self {
            Self::Openai => "sk-",
            Self::Anthropic => "sk-ant-",
            Self::Gemini => "AIza",
        }
    }

    /// Checks that `key` can be a key: one token of printable ASCII of a plausible length
    /// (it goes into an HTTP header and an environment variable as it is).
    ///
    /// # Errors
    /// [`ByokError`] saying what is wrong, never the key.
    pub fn check_key(key: &str) -> Result<(), ByokError> {
        if key.is_empty() {
            return Err(ByokError::Empty);
        }
        if !key
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\'')
        {
            return Err(ByokError::NotAToken);
        }
        if !(MIN_KEY..=MAX_KEY).contains(&key.len()) {
            return Err(ByokError::Length(key.len()));
        }
        Ok(())
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a stored key looks like in `latch byok list`: its last four characters only.
#[must_use]
pub fn preview(key: &str) -> String {
    let tail: String = key
        .chars()
        .rev()
        .take(4)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    format!("…{tail}")
}

/// `--byok`, `--no-byok` or neither.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Choice {
    /// Neither: used when the run is local.
    #[default]
    Auto,
    /// `--byok`: used even in CI or a container (the user asked), never for a team key.
    Force,
    /// `--no-byok`: never used.
    Off,
}

/// A team's BYOK setting (owner/admin).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TeamSetting {
    /// Members may use their device keys in local runs.
    #[default]
    Allowed,
    /// Device keys are never used in this team's runs; `--byok` is refused.
    Forbidden,
}

impl TeamSetting {
    /// Its name on the wire and the command line.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Allowed => "allowed",
            Self::Forbidden => "forbidden",
        }
    }
}

/// A sign that latch runs in a container, found on the file system (the IO edge reads them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContainerSign {
    /// `/.dockerenv` exists.
    DockerEnv,
    /// `/run/.containerenv` exists (podman).
    ContainerEnv,
    /// PID 1's environment has `container=…` (systemd-nspawn, podman, LXC).
    Pid1Container(String),
    /// PID 1's cgroup path names a container runtime.
    Cgroup(&'static str),
}

impl fmt::Display for ContainerSign {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::DockerEnv => f.write_str("/.dockerenv exists"),
            Self::ContainerEnv => f.write_str("/run/.containerenv exists"),
            Self::Pid1Container(what) => write!(f, "PID 1 has container={what}"),
            Self::Cgroup(marker) => write!(f, "PID 1's cgroup names {marker}"),
        }
    }
}

/// The container runtime `/proc/1/cgroup`'s content names, if any.
#[must_use]
pub fn cgroup_marker(cgroup: &str) -> Option<&'static str> {
    ["kubepods", "docker", "containerd", "libpod"]
        .into_iter()
        .find(|marker| cgroup.lines().any(|line| line.contains(marker)))
}

/// The `container=` value of `/proc/1/environ`'s content (NUL-separated), if any.
#[must_use]
pub fn pid1_container(environ: &[u8]) -> Option<String> {
    environ
        .split(|b| *b == 0)
        .find_map(|var| var.strip_prefix(b"container="))
        .map(|v| String::from_utf8_lossy(v).chars().take(40).collect())
}

/// Variables that say a CI system runs latch (any value counts, as `CI=false` is rare and
/// suspicious enough). `cuenv`'s list plus a few.
pub const CI_VARIABLES: [&str; 12] = [
    "CI",
    "GITHUB_ACTIONS",
    "GITLAB_CI",
    "BUILDKITE",
    "CIRCLECI",
    "TRAVIS",
    "JENKINS_URL",
    "TF_BUILD",
    "TEAMCITY_VERSION",
    "BITBUCKET_BUILD_NUMBER",
    "DRONE",
    "CODEBUILD_BUILD_ID",
];

/// Everything the local-run rule looks at.
#[derive(Debug, Clone)]
pub struct Situation<'a> {
    /// `--byok`, `--no-byok` or neither.
    pub choice: Choice,
    /// The run's key.
    pub key: KeyKind,
    /// The run's trigger.
    pub trigger: Trigger,
    /// The launcher's environment variables that matter (looked up by name).
    pub env: &'a [(String, String)],
    /// Container signs found on the file system.
    pub container: &'a [ContainerSign],
    /// The team's setting, when known (the launcher learns it from the platform's answer).
    pub team: Option<TeamSetting>,
}

/// Whether a run uses the device's keys, and why not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// It does (`forced` by `--byok`).
    Use {
        /// `--byok` overrode a CI or container sign.
        forced: bool,
    },
    /// It does not, for this reason (said at `-v`, recorded).
    Skip(Skip),
    /// `--byok` was asked for and cannot be honoured: an error, the run does not start.
    Refuse(Skip),
}

/// Why a run does not use the device's keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Skip {
    /// `--no-byok`.
    Off,
    /// A team key is a machine identity: never BYOK.
    TeamKey,
    /// No person started the run.
    Trigger(Trigger),
    /// A CI variable is set.
    Ci(String),
    /// GitHub Codespaces.
    Codespaces,
    /// Kubernetes (`KUBERNETES_SERVICE_HOST`).
    Kubernetes,
    /// A container sign on the file system.
    Container(ContainerSign),
    /// The team forbids BYOK.
    TeamForbids,
}

impl fmt::Display for Skip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Off => f.write_str("--no-byok"),
            Self::TeamKey => f.write_str("a team key never uses device keys"),
            Self::Trigger(t) => write!(f, "trigger {t} is not user-initiated"),
            Self::Ci(var) => write!(f, "{var} is set (a CI run)"),
            Self::Codespaces => f.write_str("CODESPACES=true (a Codespace)"),
            Self::Kubernetes => f.write_str("KUBERNETES_SERVICE_HOST is set (a pod)"),
            Self::Container(sign) => write!(f, "{sign} (a container)"),
            Self::TeamForbids => f.write_str("the team forbids BYOK"),
        }
    }
}

/// The local-run rule of DESIGN §14: a personal key, a user trigger, no CI variables, not
/// Codespaces, no container signs (unless `--byok`), and a team that does not forbid it.
/// `--no-byok` always wins; `--byok` overrides only the CI and container signs, and is refused
/// for what it cannot override.
#[must_use]
pub fn decide(s: &Situation<'_>) -> Decision {
    let forced = s.choice == Choice::Force;
    let stop = |why: Skip| {
        if forced {
            Decision::Refuse(why)
        } else {
            Decision::Skip(why)
        }
    };
    if s.choice == Choice::Off {
        return Decision::Skip(Skip::Off);
    }
    if s.key == KeyKind::Team {
        return stop(Skip::TeamKey);
    }
    if !s.trigger.is_user_initiated() {
        return stop(Skip::Trigger(s.trigger));
    }
    if s.team == Some(TeamSetting::Forbidden) {
        return stop(Skip::TeamForbids);
    }
    if forced {
        return Decision::Use { forced: true };
    }
    let var = |name: &str| s.env.iter().find(|(n, _)| n == name).map(|(_, v)| v);
    if let Some(ci) = CI_VARIABLES.iter().find(|name| var(name).is_some()) {
        let value = var(ci).map_or("", String::as_str);
        let value: String = value.chars().take(20).collect();
        return Decision::Skip(Skip::Ci(format!("{ci}={value}")));
    }
    if var("CODESPACES").is_some_and(|v| v == "true") {
        return Decision::Skip(Skip::Codespaces);
    }
    if var("KUBERNETES_SERVICE_HOST").is_some() {
        return Decision::Skip(Skip::Kubernetes);
    }
    if let Some(sign) = s.container.first() {
        return Decision::Skip(Skip::Container(sign.clone()));
    }
    Decision::Use { forced: false }
}

/// How a provider refused a request made with a device key (DESIGN §14 "Failures").
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Failure {
    /// The key is invalid or not allowed (401, 403, Gemini's 400 `API_KEY_INVALID`).
    Invalid,
    /// A rate limit (429).
    RateLimited,
    /// A quota or billing limit (OpenAI's 429 `insufficient_quota`, Anthropic's 402 and
    /// "credit balance is too low").
    Quota,
    /// The provider is overloaded (Anthropic's 529, 503).
    Overloaded,
}

impl Failure {
    /// Its code, as serialized (and in the broker's `x-latch-byok` mark).
    #[must_use]
    pub const fn code(self) -> &'static str {
        match self {
            Self::Invalid => "invalid",
            Self::RateLimited => "rate_limited",
            Self::Quota => "quota",
            Self::Overloaded => "overloaded",
        }
    }

    /// In words.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Invalid => "invalid key",
            Self::RateLimited => "rate limited",
            Self::Quota => "quota or billing limit",
            Self::Overloaded => "overloaded",
        }
    }
}

/// How much of an error body [`classify`] needs (error bodies are small JSON objects).
pub const ERROR_BODY_LIMIT: usize = 64 * 1024;

/// Classifies a provider's answer from its status and (for 4xx/5xx) the start of its body;
/// `None` for a success or an error that is not about the key, its limits or the provider's
/// load (a bad request is the agent's own to see).
#[must_use]
pub fn classify(provider: Provider, status: u16, body: &[u8]) -> Option<Failure> {
    let says = |needle: &str| {
        body.windows(needle.len())
            .any(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
    };
    match status {
        401 | 403 => Some(Failure::Invalid),
        400 if provider == Provider::Gemini && says("API_KEY_INVALID") => Some(Failure::Invalid),
        400 if provider == Provider::Anthropic && says("credit balance is too low") => {
            Some(Failure::Quota)
        }
        402 => Some(Failure::Quota),
        429 if says("insufficient_quota") || says("credit_balance_exhausted") => {
            Some(Failure::Quota)
        }
        429 => Some(Failure::RateLimited),
        503 | 529 => Some(Failure::Overloaded),
        _ => None,
    }
}

/// What `latch byok test` concludes from the model-list request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// 2xx.
    Valid,
    /// Refused as invalid.
    Invalid,
    /// Valid, but limited now.
    Limited(Failure),
    /// Some other answer (the status).
    Unexpected(u16),
}

/// [`classify`] for the test request.
#[must_use]
pub fn verdict(provider: Provider, status: u16, body: &[u8]) -> Verdict {
    if (200..300).contains(&status) {
        return Verdict::Valid;
    }
    match classify(provider, status, body) {
        Some(Failure::Invalid) => Verdict::Invalid,
        Some(limited) => Verdict::Limited(limited),
        None => Verdict::Unexpected(status),
    }
}

/// One key in the store.
#[derive(Serialize, Deserialize)]
pub struct StoredKey {
    /// Whose.
    pub provider: Provider,
    /// The key. Wiped on drop.
    #[serde(with = "zeroizing_string")]
    pub value: Zeroizing<String>,
    /// When it was added (Unix ms).
    pub added_at: i64,
}

impl fmt::Debug for StoredKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredKey")
            .field("provider", &self.provider)
            .field("added_at", &self.added_at)
            .finish_non_exhaustive()
    }
}

mod zeroizing_string {
    use zeroize::Zeroizing;

    pub(super) fn serialize<S: serde::Serializer>(
        value: &Zeroizing<String>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_str(value)
    }

    pub(super) fn deserialize<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> Result<Zeroizing<String>, D::Error> {
        <String as serde::Deserialize>::deserialize(d).map(Zeroizing::new)
    }
}

/// The store's plaintext: its keys, one per provider.
#[derive(Debug, Serialize, Deserialize)]
pub struct StoreContents {
    version: u32,
    /// The keys, in provider order.
    pub keys: Vec<StoredKey>,
}

const STORE_VERSION: u32 = 1;

impl Default for StoreContents {
    fn default() -> Self {
        Self {
            version: STORE_VERSION,
            keys: Vec::new(),
        }
    }
}

impl StoreContents {
    /// Parses the plaintext.
    ///
    /// # Errors
    /// [`ByokError::StoreParse`] or [`ByokError::StoreFormat`].
    pub fn parse(plain: &[u8]) -> Result<Self, ByokError> {
        let contents: Self = serde_json::from_slice(plain).map_err(|_| ByokError::StoreParse)?;
        if contents.version != STORE_VERSION {
            return Err(ByokError::StoreFormat(contents.version));
        }
        if contents
            .keys
            .iter()
            .any(|k| Provider::check_key(&k.value).is_err())
        {
            return Err(ByokError::StoreParse);
        }
        Ok(contents)
    }

    /// The plaintext, in a buffer allocated once at its final size (no copy is left behind
    /// by growth) and wiped on drop.
    #[must_use]
    pub fn to_plain(&self) -> Zeroizing<Vec<u8>> {
        let room = 64 + self.keys.iter().map(|k| 96 + k.value.len()).sum::<usize>();
        let mut out = Zeroizing::new(Vec::with_capacity(room));
        out.extend_from_slice(br#"{"version":1,"keys":["#);
        for (i, key) in self.keys.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            // Providers are lower-case words; keys were checked to need no escaping.
            out.extend_from_slice(br#"{"provider":""#);
            out.extend_from_slice(key.provider.as_str().as_bytes());
            out.extend_from_slice(br#"","value":""#);
            out.extend_from_slice(key.value.as_bytes());
            out.extend_from_slice(br#"","added_at":"#);
            out.extend_from_slice(key.added_at.to_string().as_bytes());
            out.push(b'}');
        }
        out.extend_from_slice(b"]}");
        out
    }

    /// The key of `provider`, if stored.
    #[must_use]
    pub fn get(&self, provider: Provider) -> Option<&StoredKey> {
        self.keys.iter().find(|k| k.provider == provider)
    }

    /// Adds or replaces `provider`'s key; says whether one was replaced.
    pub fn set(&mut self, provider: Provider, value: Zeroizing<String>, now: i64) -> bool {
        let replaced = self.remove(provider);
        self.keys.push(StoredKey {
            provider,
            value,
            added_at: now,
        });
        self.keys.sort_by_key(|k| k.provider);
        replaced
    }

    /// Removes `provider`'s key; says whether there was one.
    pub fn remove(&mut self, provider: Provider) -> bool {
        let before = self.keys.len();
        self.keys.retain(|k| k.provider != provider);
        self.keys.len() != before
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn situation<'a>(
        choice: Choice,
        key: KeyKind,
        trigger: Trigger,
        env: &'a [(String, String)],
        container: &'a [ContainerSign],
        team: Option<TeamSetting>,
    ) -> Decision {
        decide(&Situation {
            choice,
            key,
            trigger,
            env,
            container,
            team,
        })
    }

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect()
    }

    /// The eligibility table of DESIGN §14, row by row: (choice, key, trigger, env, container
    /// signs, team setting) → decision.
    #[test]
    #[allow(clippy::too_many_lines)] // one table
    fn the_local_run_rule_row_by_row() {
        use Choice::{Auto, Force, Off};
        use KeyKind::{Personal, Team};
        use Trigger::{Api, Cli, Integration, Schedule, Slack};
        let none: &[ContainerSign] = &[];
        let docker = [ContainerSign::DockerEnv];
        let cgroup = [ContainerSign::Cgroup("kubepods")];
        let clean = env(&[("HOME", "/home/dev"), ("PATH", "/usr/bin")]);
        let ci = env(&[("CI", "true")]);
        let gha = env(&[("GITHUB_ACTIONS", "true")]);
        let jenkins = env(&[("JENKINS_URL", "https://ci.example")]);
        let empty_ci = env(&[("CI", "")]);
        let spaces = env(&[("CODESPACES", "true")]);
        let spaces_false = env(&[("CODESPACES", "false")]);
        let pod = env(&[("KUBERNETES_SERVICE_HOST", "10.0.0.1")]);
        let allowed = Some(TeamSetting::Allowed);
        let forbidden = Some(TeamSetting::Forbidden);
        let rows: Vec<(Decision, Decision)> = vec![
            // A developer's laptop.
            (
                situation(Auto, Personal, Cli, &clean, none, None),
                Decision::Use { forced: false },
            ),
            (
                situation(Auto, Personal, Slack, &clean, none, allowed),
                Decision::Use { forced: false },
            ),
            (
                situation(Auto, Personal, Api, &clean, none, allowed),
                Decision::Use { forced: false },
            ),
            // --no-byok always wins.
            (
                situation(Off, Personal, Cli, &clean, none, allowed),
                Decision::Skip(Skip::Off),
            ),
            // A team key never, and --byok cannot change that.
            (
                situation(Auto, Team, Cli, &clean, none, allowed),
                Decision::Skip(Skip::TeamKey),
            ),
            (
                situation(Force, Team, Cli, &clean, none, allowed),
                Decision::Refuse(Skip::TeamKey),
            ),
            // A schedule or an integration is not a person.
            (
                situation(Auto, Personal, Schedule, &clean, none, allowed),
                Decision::Skip(Skip::Trigger(Schedule)),
            ),
            (
                situation(Force, Personal, Integration, &clean, none, allowed),
                Decision::Refuse(Skip::Trigger(Integration)),
            ),
            // CI variables, whatever their value.
            (
                situation(Auto, Personal, Cli, &ci, none, allowed),
                Decision::Skip(Skip::Ci("CI=true".into())),
            ),
            (
                situation(Auto, Personal, Cli, &empty_ci, none, allowed),
                Decision::Skip(Skip::Ci("CI=".into())),
            ),
            (
                situation(Auto, Personal, Cli, &gha, none, allowed),
                Decision::Skip(Skip::Ci("GITHUB_ACTIONS=true".into())),
            ),
            (
                situation(Auto, Personal, Cli, &jenkins, none, allowed),
                Decision::Skip(Skip::Ci("JENKINS_URL=https://ci.example".into())),
            ),
            // Codespaces, and only when it says true.
            (
                situation(Auto, Personal, Cli, &spaces, none, allowed),
                Decision::Skip(Skip::Codespaces),
            ),
            (
                situation(Auto, Personal, Cli, &spaces_false, none, allowed),
                Decision::Use { forced: false },
            ),
            (
                situation(Auto, Personal, Cli, &pod, none, allowed),
                Decision::Skip(Skip::Kubernetes),
            ),
            // Container signs.
            (
                situation(Auto, Personal, Cli, &clean, &docker, allowed),
                Decision::Skip(Skip::Container(ContainerSign::DockerEnv)),
            ),
            (
                situation(Auto, Personal, Cli, &clean, &cgroup, allowed),
                Decision::Skip(Skip::Container(ContainerSign::Cgroup("kubepods"))),
            ),
            // --byok overrides CI and containers (the user asked)...
            (
                situation(Force, Personal, Cli, &ci, &docker, allowed),
                Decision::Use { forced: true },
            ),
            (
                situation(Force, Personal, Cli, &spaces, none, None),
                Decision::Use { forced: true },
            ),
            // ...but not a team that forbids BYOK.
            (
                situation(Auto, Personal, Cli, &clean, none, forbidden),
                Decision::Skip(Skip::TeamForbids),
            ),
            (
                situation(Force, Personal, Cli, &clean, none, forbidden),
                Decision::Refuse(Skip::TeamForbids),
            ),
            (
                situation(Off, Personal, Cli, &clean, none, forbidden),
                Decision::Skip(Skip::Off),
            ),
        ];
        for (i, (got, want)) in rows.into_iter().enumerate() {
            assert_eq!(got, want, "row {i}");
        }
    }

    #[test]
    fn skips_read_as_reasons() {
        assert_eq!(
            Skip::Ci("CI=true".into()).to_string(),
            "CI=true is set (a CI run)"
        );
        assert_eq!(
            Skip::Container(ContainerSign::DockerEnv).to_string(),
            "/.dockerenv exists (a container)"
        );
        assert_eq!(
            Skip::Trigger(Trigger::Schedule).to_string(),
            "trigger schedule is not user-initiated"
        );
    }

    #[test]
    fn container_signs_parse_from_proc() {
        assert_eq!(
            cgroup_marker("0::/system.slice/docker-3f2a.scope\n"),
            Some("docker")
        );
        assert_eq!(
            cgroup_marker("12:pids:/kubepods/burstable/pod1\n"),
            Some("kubepods")
        );
        assert_eq!(cgroup_marker("0::/init.scope\n"), None);
        assert_eq!(cgroup_marker(""), None);
        assert_eq!(
            pid1_container(b"PATH=/bin\0container=podman\0HOME=/\0"),
            Some("podman".into())
        );
        assert_eq!(pid1_container(b"PATH=/bin\0HOME=/"), None);
        assert_eq!(pid1_container(b""), None);
    }

    #[test]
    fn provider_failures_are_classified_per_provider() {
        use Failure::{Invalid, Overloaded, Quota, RateLimited};
        use Provider::{Anthropic, Gemini, Openai};
        let rows: [(Provider, u16, &str, Option<Failure>); 16] = [
            (Openai, 200, "{}", None),
            (
                Openai,
                401,
                r#"{"error":{"message":"Incorrect API key provided"}}"#,
                Some(Invalid),
            ),
            (
                Openai,
                429,
                r#"{"error":{"type":"requests","code":"rate_limit_exceeded"}}"#,
                Some(RateLimited),
            ),
            (
                Openai,
                429,
                r#"{"error":{"type":"insufficient_quota","code":"insufficient_quota"}}"#,
                Some(Quota),
            ),
            (Openai, 400, r#"{"error":{"message":"bad model"}}"#, None),
            (Openai, 500, "", None),
            (
                Anthropic,
                401,
                r#"{"type":"error","error":{"type":"authentication_error"}}"#,
                Some(Invalid),
            ),
            (
                Anthropic,
                403,
                r#"{"type":"error","error":{"type":"permission_error"}}"#,
                Some(Invalid),
            ),
            (
                Anthropic,
                402,
                r#"{"type":"error","error":{"type":"billing_error"}}"#,
                Some(Quota),
            ),
            (
                Anthropic,
                400,
                r#"{"error":{"message":"Your credit balance is too low to access"}}"#,
                Some(Quota),
            ),
            (
                Anthropic,
                529,
                r#"{"type":"error","error":{"type":"overloaded_error"}}"#,
                Some(Overloaded),
            ),
            (
                Anthropic,
                429,
                r#"{"type":"error","error":{"type":"rate_limit_error"}}"#,
                Some(RateLimited),
            ),
            (
                Gemini,
                400,
                r#"{"error":{"status":"INVALID_ARGUMENT","details":[{"reason":"API_KEY_INVALID"}]}}"#,
                Some(Invalid),
            ),
            (
                Gemini,
                400,
                r#"{"error":{"status":"INVALID_ARGUMENT","message":"bad"}}"#,
                None,
            ),
            (
                Gemini,
                403,
                r#"{"error":{"status":"PERMISSION_DENIED"}}"#,
                Some(Invalid),
            ),
            (
                Gemini,
                429,
                r#"{"error":{"status":"RESOURCE_EXHAUSTED"}}"#,
                Some(RateLimited),
            ),
        ];
        for (provider, status, body, want) in rows {
            assert_eq!(
                classify(provider, status, body.as_bytes()),
                want,
                "{provider} {status} {body}"
            );
        }
        assert_eq!(verdict(Openai, 200, b""), Verdict::Valid);
        assert_eq!(verdict(Openai, 401, b""), Verdict::Invalid);
        assert_eq!(verdict(Anthropic, 529, b""), Verdict::Limited(Overloaded));
        assert_eq!(verdict(Gemini, 404, b""), Verdict::Unexpected(404));
    }

    #[test]
    fn a_failures_code_is_its_serialized_name() {
        for class in [
            Failure::Invalid,
            Failure::RateLimited,
            Failure::Quota,
            Failure::Overloaded,
        ] {
            assert_eq!(
                serde_json::to_value(class).expect("serializes"),
                class.code()
            );
        }
    }

    #[test]
    fn providers_parse_and_name_their_variables() {
        for p in Provider::ALL {
            assert_eq!(Provider::parse(p.as_str()), Ok(p));
            assert_eq!(Provider::of_variable(p.variable()), Some(p));
            assert_eq!(p.preset().as_str(), p.as_str());
        }
        assert_eq!(Provider::parse("Google"), Ok(Provider::Gemini));
        assert!(matches!(
            Provider::parse("azure"),
            Err(ByokError::UnknownProvider(_))
        ));
        assert_eq!(Provider::Gemini.also(), ["GOOGLE_API_KEY"]);
    }

    #[test]
    fn keys_must_be_one_plausible_token() {
        assert!(Provider::check_key("sk-proj-AbCdEfGhIjKlMnOpQrStUvWx0123").is_ok());
        assert_eq!(Provider::check_key(""), Err(ByokError::Empty));
        assert_eq!(Provider::check_key("short-key"), Err(ByokError::Length(9)));
        assert_eq!(
            Provider::check_key(&"k".repeat(513)),
            Err(ByokError::Length(513))
        );
        for bad in [
            "sk-proj-AbCdEfGh IjKlMnOpQrStUvWx",
            "sk-proj-AbCdEfGhIjKlMnOpQrStUvWx\n",
            "\"sk-proj-AbCdEfGhIjKlMnOpQrStUvWx\"",
            "sk-proj-AbCdEfGhIjKlMnOpQrStUvWxé",
        ] {
            assert_eq!(
                Provider::check_key(bad),
                Err(ByokError::NotAToken),
                "{bad:?}"
            );
        }
        let message = ByokError::NotAToken.to_string();
        assert!(!message.contains("sk-"), "{message}");
    }

    #[test]
    fn the_store_round_trips_and_refuses_what_it_did_not_write() {
        let mut store = StoreContents::default();
        assert!(!store.set(
            Provider::Openai,
            Zeroizing::new("sk-proj-AbCdEfGhIjKlMnOpQrStUvWx0123".into()),
            5
        ));
        assert!(!store.set(
            Provider::Anthropic,
            Zeroizing::new("sk-ant-api03-AbCdEfGhIjKlMnOpQrStUvWx".into()),
            6
        ));
        assert!(store.set(
            Provider::Openai,
            Zeroizing::new("sk-proj-ZzCdEfGhIjKlMnOpQrStUvWx9999".into()),
            7
        ));
        let plain = store.to_plain();
        assert_eq!(plain.len(), plain.capacity().min(plain.len()));
        let back = StoreContents::parse(&plain).expect("parses");
        assert_eq!(back.keys.len(), 2);
        assert_eq!(back.keys[0].provider, Provider::Openai);
        assert_eq!(
            back.get(Provider::Openai).map(|k| k.value.as_str()),
            Some("sk-proj-ZzCdEfGhIjKlMnOpQrStUvWx9999")
        );
        assert_eq!(back.get(Provider::Openai).map(|k| k.added_at), Some(7));
        assert!(back.get(Provider::Gemini).is_none());
        assert!(!format!("{back:?}").contains("sk-"), "{back:?}");
        for bad in [
            &b""[..],
            b"{}",
            br#"{"version":2,"keys":[]}"#,
            br#"{"version":1,"keys":[{"provider":"azure","value":"x","added_at":1}]}"#,
            br#"{"version":1,"keys":[{"provider":"openai","value":"has space in it here ok","added_at":1}]}"#,
        ] {
            assert!(StoreContents::parse(bad).is_err(), "{bad:?}");
        }
        let mut store = back;
        assert!(store.remove(Provider::Openai));
        assert!(!store.remove(Provider::Openai));
        assert_eq!(store.keys.len(), 1);
    }

    #[test]
    fn previews_show_the_last_four_characters_only() {
        assert_eq!(preview("sk-proj-AbCdEfGhIjKlMnOpQrStUvWx0123"), "…0123");
        assert_eq!(preview("abc"), "…abc");
    }
}
