//! The credential broker's pure rules (DESIGN §13): broker policies on secrets and their
//! presets, the per-run placeholder, the one header a real value may go into, and the
//! replacement of a real value by its placeholder in what the upstream answers.
//!
//! The broker itself (sockets, TLS, HTTP) is `crate::broker`; everything here is plain data and
//! byte work, tested inline.

use std::fmt;
use std::net::IpAddr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use rand_core::TryCryptoRng;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::split::Split;

/// At most this many hosts in one policy.
pub const MAX_HOSTS: usize = 16;

/// The header a brokered value goes into, and how it is written there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HeaderForm {
    /// `Authorization: Bearer <value>` (also `token <value>`, as GitHub accepts).
    AuthorizationBearer,
    /// `x-api-key: <value>`.
    XApiKey,
    /// `x-api-key: <value>` or `Authorization: Bearer <value>`, whichever carries the
    /// placeholder (Anthropic: its API takes both, its Python SDK sends the second, curl
    /// examples and Claude Code the first).
    XApiKeyOrBearer,
    /// `x-goog-api-key: <value>` (Gemini).
    XGoogApiKey,
    /// `Authorization: Basic base64(user:<value>)`: the value is the password (git over HTTPS).
    BasicPassword,
}

impl HeaderForm {
    /// Every form, in the order the README lists them.
    pub const ALL: [Self; 5] = [
        Self::AuthorizationBearer,
        Self::XApiKey,
        Self::XApiKeyOrBearer,
        Self::XGoogApiKey,
        Self::BasicPassword,
    ];

    /// Its name in the API and on the command line.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::AuthorizationBearer => "authorization-bearer",
            Self::XApiKey => "x-api-key",
            Self::XApiKeyOrBearer => "x-api-key-or-bearer",
            Self::XGoogApiKey => "x-goog-api-key",
            Self::BasicPassword => "basic-password",
        }
    }

    /// The headers it may live in (lower case), each with how it is written there.
    #[must_use]
    pub const fn headers(self) -> &'static [(&'static str, HeaderForm)] {
        match self {
            Self::AuthorizationBearer => &[("authorization", Self::AuthorizationBearer)],
            Self::BasicPassword => &[("authorization", Self::BasicPassword)],
            Self::XApiKey => &[("x-api-key", Self::XApiKey)],
            Self::XApiKeyOrBearer => &[
                ("x-api-key", Self::XApiKey),
                ("authorization", Self::AuthorizationBearer),
            ],
            Self::XGoogApiKey => &[("x-goog-api-key", Self::XGoogApiKey)],
        }
    }

    /// Parses a form's name.
    ///
    /// # Errors
    /// [`PolicyError::Header`] naming the forms there are.
    pub fn parse(text: &str) -> Result<Self, PolicyError> {
        Self::ALL
            .into_iter()
            .find(|f| f.as_str() == text)
            .ok_or_else(|| PolicyError::Header(text.to_owned()))
    }
}

impl fmt::Display for HeaderForm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A named policy for a well-known API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Preset {
    /// api.openai.com, `Authorization: Bearer`.
    Openai,
    /// api.anthropic.com, `x-api-key` or `Authorization: Bearer`.
    Anthropic,
    /// generativelanguage.googleapis.com, `x-goog-api-key`.
    Gemini,
    /// api.github.com, github.com, uploads.github.com, `Authorization: Bearer`/`token`.
    Github,
}

impl Preset {
    /// Every preset.
    pub const ALL: [Self; 4] = [Self::Openai, Self::Anthropic, Self::Gemini, Self::Github];

    /// Its name (also its route in base-URL mode).
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Openai => "openai",
            Self::Anthropic => "anthropic",
            Self::Gemini => "gemini",
            Self::Github => "github",
        }
    }

    /// The hosts its key may be sent to.
    #[must_use]
    pub const fn hosts(self) -> &'static [&'static str] {
        match self {
            Self::Openai => &["api.openai.com"],
            Self::Anthropic => &["api.anthropic.com"],
            Self::Gemini => &["generativelanguage.googleapis.com"],
            Self::Github => &["api.github.com", "github.com", "uploads.github.com"],
        }
    }

    /// The header its key goes into.
    #[must_use]
    pub const fn header(self) -> HeaderForm {
        match self {
            Self::Openai | Self::Github => HeaderForm::AuthorizationBearer,
            Self::Anthropic => HeaderForm::XApiKeyOrBearer,
            Self::Gemini => HeaderForm::XGoogApiKey,
        }
    }

    /// The SDK's base-URL variable and the path under the broker it points to, if its SDKs
    /// read one.
    #[must_use]
    pub const fn base_url(self) -> Option<(&'static str, &'static str)> {
        match self {
            Self::Openai => Some(("OPENAI_BASE_URL", "/openai/v1")),
            Self::Anthropic => Some(("ANTHROPIC_BASE_URL", "/anthropic")),
            Self::Gemini => Some(("GOOGLE_GEMINI_BASE_URL", "/gemini")),
            Self::Github => None,
        }
    }

    /// Parses a preset's name.
    #[must_use]
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == text)
    }

    /// The preset a well-known variable name implies (`--broker OPENAI_API_KEY`).
    #[must_use]
    pub fn for_name(name: &str) -> Option<Self> {
        match name {
            "OPENAI_API_KEY" => Some(Self::Openai),
            "ANTHROPIC_API_KEY" => Some(Self::Anthropic),
            "GEMINI_API_KEY" | "GOOGLE_API_KEY" => Some(Self::Gemini),
            "GH_TOKEN" | "GITHUB_TOKEN" => Some(Self::Github),
            _ => None,
        }
    }
}

impl fmt::Display for Preset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A host a brokered value may be sent to: a lower-case DNS name or an IP literal, and a port
/// (443 unless written).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Host {
    name: String,
    port: u16,
}

impl Host {
    /// Parses `name`, `name:port` or `1.2.3.4[:port]`; names are folded to lower case. (No IPv6
    /// literals: an API is reached by name, and an address can be named with `--resolve`.)
    ///
    /// # Errors
    /// [`PolicyError::Host`] saying what is wrong.
    pub fn parse(text: &str) -> Result<Self, PolicyError> {
        let bad = |why: &str| PolicyError::Host(text.to_owned(), why.to_owned());
        if text.is_empty() {
            return Err(bad("a host is empty"));
        }
        if text.contains("://") || text.contains('/') {
            return Err(bad("give a host name, not a URL"));
        }
        if text.contains('*') {
            return Err(bad("wildcards are not supported: name each host"));
        }
        if text.starts_with('[') || text.matches(':').count() > 1 {
            return Err(bad("IPv6 addresses are not supported: name the host"));
        }
        let (name, port) = match text.rsplit_once(':') {
            Some((name, port)) => (name.to_ascii_lowercase(), Some(port)),
            None => (text.to_ascii_lowercase(), None),
        };
        let port = match port {
            None => 443,
            // Digits only, no leading zero: one spelling per port.
            Some(p) => Some(p)
                .filter(|p| p.bytes().all(|b| b.is_ascii_digit()) && !p.starts_with('0'))
                .and_then(|p| p.parse::<u16>().ok())
                .ok_or_else(|| bad("the port is not a number from 1 to 65535"))?,
        };
        if name.parse::<std::net::Ipv4Addr>().is_err() && !is_dns_name(&name) {
            return Err(bad(
                "a host name is letters, digits, hyphens and dots (at most 253 characters)",
            ));
        }
        Ok(Self { name, port })
    }

    /// The name, without the port.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The port.
    #[must_use]
    pub const fn port(&self) -> u16 {
        self.port
    }

    /// The IP address it is, if it is a literal.
    #[must_use]
    pub fn ip(&self) -> Option<IpAddr> {
        self.name.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4)
    }

    /// The authority a request to it names: `name` on 443, else `name:port`.
    #[must_use]
    pub fn authority(&self) -> String {
        self.to_string()
    }

    /// Whether a request's `Host`/`:authority` names this host (port 443 may be left out).
    #[must_use]
    pub fn is_named_by(&self, authority: &str) -> bool {
        Self::parse(authority).is_ok_and(|h| h == *self)
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.port == 443 {
            f.write_str(&self.name)
        } else {
            write!(f, "{}:{}", self.name, self.port)
        }
    }
}

fn is_dns_name(name: &str) -> bool {
    name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        })
        // The last label of a name is never all digits (that would be a mistyped address).
        && !name
            .rsplit('.')
            .next()
            .is_some_and(|l| l.bytes().all(|b| b.is_ascii_digit()))
}

/// Why a policy is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// A host is malformed.
    #[error("broker host `{0}`: {1}")]
    Host(String, String),
    /// No hosts and no preset.
    #[error("a broker policy needs a preset (openai, anthropic, gemini, github) or hosts")]
    Empty,
    /// Both a preset and hosts.
    #[error("give a preset or hosts, not both")]
    PresetAndHosts,
    /// An unknown preset.
    #[error("unknown broker preset `{0}`: the presets are openai, anthropic, gemini and github")]
    Preset(String),
    /// An unknown header form.
    #[error(
        "unknown broker header `{0}`: the forms are authorization-bearer, x-api-key, x-api-key-or-bearer, x-goog-api-key and basic-password"
    )]
    Header(String),
    /// Too many hosts.
    #[error("a broker policy names at most {MAX_HOSTS} hosts")]
    TooMany,
}

/// A broker policy as the API carries it: a preset or hosts, a header form, `always`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicySpec {
    /// `openai`, `anthropic`, `gemini` or `github`: its hosts and header form.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preset: Option<String>,
    /// The hosts the value may be sent to (`host` or `host:port`), when no preset is named;
    /// with a preset, the answer lists the preset's hosts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
    /// `authorization-bearer` (the default), `x-api-key`, `x-api-key-or-bearer`,
    /// `x-goog-api-key` or `basic-password`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<String>,
    /// Brokered even when a run asks `--no-broker` for it.
    #[serde(default)]
    pub always: bool,
}

/// A checked broker policy.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Policy {
    /// The preset it came from.
    pub preset: Option<Preset>,
    /// Where the value may go; the first is base-URL mode's upstream.
    pub hosts: Vec<Host>,
    /// Which header.
    pub header: HeaderForm,
    /// Not even `--no-broker` hands the real value to the command.
    pub always: bool,
}

impl Policy {
    /// Checks a policy from the API (or the store, which keeps [`Policy::spec`]'s form).
    ///
    /// # Errors
    /// [`PolicyError`].
    pub fn from_spec(spec: &PolicySpec) -> Result<Self, PolicyError> {
        let preset = spec
            .preset
            .as_deref()
            .map(|p| Preset::parse(p).ok_or_else(|| PolicyError::Preset(p.to_owned())))
            .transpose()?;
        let hosts = match preset {
            Some(preset) => {
                let own: Vec<_> = preset.hosts().iter().map(|h| (*h).to_owned()).collect();
                // The stored form lists the preset's hosts; anything else is a contradiction.
                if !spec.hosts.is_empty() && spec.hosts != own {
                    return Err(PolicyError::PresetAndHosts);
                }
                own.iter()
                    .map(|h| Host::parse(h))
                    .collect::<Result<_, _>>()?
            }
            None if spec.hosts.is_empty() => return Err(PolicyError::Empty),
            None => Self::hosts(spec.hosts.iter().map(String::as_str))?,
        };
        let header = match (&spec.header, preset) {
            (Some(h), _) => HeaderForm::parse(h)?,
            (None, Some(p)) => p.header(),
            (None, None) => HeaderForm::AuthorizationBearer,
        };
        Ok(Self {
            preset,
            hosts,
            header,
            always: spec.always,
        })
    }

    /// Parses a host list (duplicates dropped, order kept).
    ///
    /// # Errors
    /// [`PolicyError`].
    pub fn hosts<'a>(list: impl IntoIterator<Item = &'a str>) -> Result<Vec<Host>, PolicyError> {
        let mut hosts: Vec<Host> = Vec::new();
        for (i, text) in list.into_iter().enumerate() {
            // Counted as written, duplicates included: a list is refused for its length alone.
            if i == MAX_HOSTS {
                return Err(PolicyError::TooMany);
            }
            let host = Host::parse(text)?;
            if !hosts.contains(&host) {
                hosts.push(host);
            }
        }
        if hosts.is_empty() {
            return Err(PolicyError::Empty);
        }
        Ok(hosts)
    }

    /// The command line's `PRESET` or `HOST[,HOST…]`, with an optional header form.
    ///
    /// # Errors
    /// [`PolicyError`].
    pub fn from_words(
        words: &str,
        header: Option<&str>,
        always: bool,
    ) -> Result<Self, PolicyError> {
        let spec = match Preset::parse(words) {
            Some(p) => PolicySpec {
                preset: Some(p.as_str().to_owned()),
                ..PolicySpec::default()
            },
            None => PolicySpec {
                hosts: words
                    .split(',')
                    .map(|h| h.trim().to_owned())
                    .filter(|h| !h.is_empty())
                    .collect(),
                ..PolicySpec::default()
            },
        };
        Self::from_spec(&PolicySpec {
            header: header.map(str::to_owned),
            always,
            ..spec
        })
    }

    /// The full form the API answers and the store keeps.
    #[must_use]
    pub fn spec(&self) -> PolicySpec {
        PolicySpec {
            preset: self.preset.map(|p| p.as_str().to_owned()),
            hosts: self.hosts.iter().map(Host::authority).collect(),
            header: Some(self.header.as_str().to_owned()),
            always: self.always,
        }
    }

    /// Whether `host` is one of its hosts.
    #[must_use]
    pub fn allows(&self, host: &Host) -> bool {
        self.hosts.contains(host)
    }
}

/// How one delivered secret reaches a run's command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Brokering<'a> {
    /// The real value.
    Real,
    /// A placeholder, the value going only where the policy says.
    Brokered(&'a Policy),
    /// The real value, its policy set aside by the run (`--no-broker`): recorded.
    Waived,
}

/// The rule of DESIGN §13: a secret's own policy always applies (a run cannot widen it with an
/// ad-hoc one), unless the run waives it and the policy is not `always`; a secret with no
/// policy is brokered when the run asks for it ad hoc.
#[must_use]
pub fn brokering<'a>(
    stored: Option<&'a Policy>,
    ad_hoc: Option<&'a Policy>,
    waived: bool,
) -> Brokering<'a> {
    match (stored, ad_hoc) {
        (Some(p), _) if p.always => Brokering::Brokered(p),
        // Asked both ways, the safer wins.
        (Some(_), None) if waived => Brokering::Waived,
        (Some(p), _) | (None, Some(p)) => Brokering::Brokered(p),
        (None, None) => Brokering::Real,
    }
}

/// Why a value cannot be brokered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    /// Not one token of printable ASCII.
    #[error("its value is not one token of printable ASCII, so it cannot go into an HTTP header")]
    NotAToken,
    /// Too little of it is random for a placeholder of the same shape to be unguessable.
    #[error(
        "its value is too short to broker: a placeholder of the same shape would be guessable (it needs at least 96 bits of letters and digits)"
    )]
    TooShort,
    /// The RNG failed.
    #[error("the OS random number generator failed")]
    Rng,
}

/// Vendor prefixes kept in a placeholder, longest first.
const PREFIXES: [&str; 14] = [
    "sk-ant-api03-",
    "github_pat_",
    "sk-proj-",
    "sk-svcacct-",
    "sk-admin-",
    "sk-ant-",
    "glpat-",
    "xoxb-",
    "xoxp-",
    "ghp_",
    "gho_",
    "ghs_",
    "AIza",
    "sk-",
];

/// Makes the placeholder for `value`: the same length, the same vendor prefix, and every other
/// letter and digit replaced by a random one of its class (punctuation kept), drawn from
/// `rng`. A GitHub-style checksum at the end is made wrong on purpose, so that secret scanners
/// that validate it ignore the placeholder.
///
/// # Errors
/// [`ValueError`]: the value cannot go into a header, or is too short for a placeholder of its
/// shape to be unguessable.
pub fn placeholder<R: TryCryptoRng + ?Sized>(
    value: &[u8],
    rng: &mut R,
) -> Result<Vec<u8>, ValueError> {
    let keep = check_value(value)?;
    let mut out = value[..keep].to_vec();
    let mut pool = [0u8; 64];
    let mut at = pool.len();
    let mut draw = |n: u8| -> Result<u8, ValueError> {
        // Rejection sampling: no modulo bias.
        let limit = 256 - (256 % u16::from(n));
        loop {
            if at == pool.len() {
                rng.try_fill_bytes(&mut pool).map_err(|_| ValueError::Rng)?;
                at = 0;
            }
            let b = pool[at];
            at += 1;
            if u16::from(b) < limit {
                return Ok(b % n);
            }
        }
    };
    for &b in &value[keep..] {
        out.push(match b {
            b'0'..=b'9' => b'0' + draw(10)?,
            b'a'..=b'z' => b'a' + draw(26)?,
            b'A'..=b'Z' => b'A' + draw(26)?,
            other => other,
        });
    }
    spoil_github_checksum(&mut out);
    Ok(out)
}

/// Whether `value` can be brokered: one token of printable ASCII whose random part is long
/// enough for a placeholder of its shape to be unguessable. Returns the length of the vendor
/// prefix a placeholder keeps.
///
/// # Errors
/// [`ValueError`].
pub fn check_value(value: &[u8]) -> Result<usize, ValueError> {
    if value.is_empty() || !value.iter().all(|b| (0x21..=0x7e).contains(b)) {
        return Err(ValueError::NotAToken);
    }
    let keep = PREFIXES
        .iter()
        .find(|p| value.starts_with(p.as_bytes()))
        .map_or(0, |p| p.len());
    let bits: f64 = value[keep..]
        .iter()
        .map(|b| match b {
            b'0'..=b'9' => 10f64.log2(),
            b'a'..=b'z' | b'A'..=b'Z' => 26f64.log2(),
            _ => 0.0,
        })
        .sum();
    if bits < 96.0 {
        return Err(ValueError::TooShort);
    }
    Ok(keep)
}

/// GitHub's classic tokens (`ghp_` and kin, 40 characters) end in a base62 CRC32 of the 30
/// characters before it; a placeholder's must never be right.
fn spoil_github_checksum(token: &mut [u8]) {
    const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    if token.len() != 40 || !token.starts_with(b"gh") || token[3] != b'_' {
        return;
    }
    let mut n = crc32fast::hash(&token[4..34]);
    let mut right = [b'0'; 6];
    for slot in right.iter_mut().rev() {
        *slot = BASE62[(n % 62) as usize];
        n /= 62;
    }
    if token[34..] == right {
        token[39] = if token[39] == b'0' { b'1' } else { b'0' };
    }
}

/// The header value to send upstream in place of `sent`, if `sent` is exactly what `form`
/// writes with `placeholder` (its scheme, if any, kept as the client wrote it); `None`
/// otherwise, and the request goes on unchanged. The real value is joined only into the
/// returned buffer.
#[must_use]
pub fn substitute(
    form: HeaderForm,
    sent: &[u8],
    placeholder: &[u8],
    real: &Split,
) -> Option<Zeroizing<Vec<u8>>> {
    match form {
        // A form of several headers is substituted header by header (`HeaderForm::headers`).
        HeaderForm::XApiKeyOrBearer => None,
        HeaderForm::XApiKey | HeaderForm::XGoogApiKey => (sent == placeholder).then(|| real.join()),
        HeaderForm::AuthorizationBearer => {
            let space = sent.iter().position(|b| *b == b' ')?;
            let (scheme, rest) = (&sent[..space], &sent[space + 1..]);
            let known =
                scheme.eq_ignore_ascii_case(b"bearer") || scheme.eq_ignore_ascii_case(b"token");
            if !known || rest != placeholder {
                return None;
            }
            let value = real.join();
            let mut out = Zeroizing::new(Vec::with_capacity(space + 1 + value.len()));
            out.extend_from_slice(&sent[..=space]);
            out.extend_from_slice(&value);
            Some(out)
        }
        HeaderForm::BasicPassword => {
            let (scheme, encoded) = sent.split_at(sent.iter().position(|b| *b == b' ')?);
            if !scheme.eq_ignore_ascii_case(b"basic") {
                return None;
            }
            let decoded = Zeroizing::new(STANDARD.decode(&encoded[1..]).ok()?);
            let colon = decoded.iter().position(|b| *b == b':')?;
            if decoded[colon + 1..] != *placeholder {
                return None;
            }
            let value = real.join();
            let mut plain = Zeroizing::new(Vec::with_capacity(colon + 1 + value.len()));
            plain.extend_from_slice(&decoded[..=colon]);
            plain.extend_from_slice(&value);
            let mut out = Zeroizing::new(b"Basic ".to_vec());
            let mut text = Zeroizing::new(String::new());
            STANDARD.encode_string(plain.as_slice(), &mut text);
            out.extend_from_slice(text.as_bytes());
            Some(out)
        }
    }
}

/// One value to replace in responses: the real value as shares, and its placeholder.
#[derive(Debug)]
pub struct Swap<'a> {
    /// The real value.
    pub real: &'a Split,
    /// What it becomes.
    pub placeholder: &'a [u8],
}

/// Replaces every real value in `buf` by its placeholder, in place (they have the same
/// length), comparing through the shares so that no whole copy of a value is made. Returns how
/// many were replaced.
pub fn replace_in(buf: &mut [u8], swaps: &[Swap<'_>]) -> usize {
    let mut count = 0;
    for swap in swaps {
        let len = swap.real.len();
        if len == 0 || buf.len() < len {
            continue;
        }
        let first = swap.real.byte(0);
        let mut at = 0;
        while let Some(found) = memchr::memchr(first, &buf[at..=buf.len() - len]) {
            let start = at + found;
            if swap.real.equals(&buf[start..start + len]) {
                buf[start..start + len].copy_from_slice(swap.placeholder);
                count += 1;
                at = start + len;
            } else {
                at = start + 1;
            }
            if at + len > buf.len() {
                break;
            }
        }
    }
    count
}

/// How many bytes at the end of `buf` must be held back: the longest proper suffix that could
/// still grow into one of the values.
#[must_use]
pub fn held_back(buf: &[u8], swaps: &[Swap<'_>]) -> usize {
    let mut hold = 0;
    for swap in swaps {
        let len = swap.real.len();
        let longest = len.saturating_sub(1).min(buf.len());
        for keep in (hold + 1..=longest).rev() {
            if swap.real.starts_with(&buf[buf.len() - keep..]) {
                hold = keep;
                break;
            }
        }
    }
    hold
}

/// Replaces real values by placeholders in a stream of chunks: each chunk is answered at once
/// but for a tail that could be the start of a value, which waits for the next chunk (or the
/// end).
#[derive(Debug, Default)]
pub struct StreamSwap {
    carry: Zeroizing<Vec<u8>>,
    /// Values replaced so far.
    pub replaced: usize,
}

impl StreamSwap {
    /// The bytes of `chunk` (after what was held back) that can go on now.
    pub fn push(&mut self, chunk: &[u8], swaps: &[Swap<'_>]) -> Zeroizing<Vec<u8>> {
        let mut buf = std::mem::take(&mut self.carry);
        buf.extend_from_slice(chunk);
        self.replaced += replace_in(&mut buf, swaps);
        let hold = held_back(&buf, swaps);
        let split = buf.len() - hold;
        self.carry = Zeroizing::new(buf[split..].to_vec());
        buf.truncate(split);
        buf
    }

    /// What was held back, at the end of the stream.
    pub fn finish(&mut self) -> Zeroizing<Vec<u8>> {
        std::mem::take(&mut self.carry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    fn split(value: &[u8]) -> Split {
        let pad: Vec<u8> = (0..value.len())
            .map(|i| u8::try_from(i % 200).expect("small").wrapping_mul(37) | 1)
            .collect();
        Split::new(value, Zeroizing::new(pad)).expect("long enough")
    }

    #[test]
    fn hosts_parse_and_fold() {
        assert!(Host::parse("[::1]:9000").is_err());
        assert!(Host::parse("a.example:080").is_err());
        assert!(Host::parse("a.example:+80").is_err());
        let h = Host::parse("API.OpenAI.com").expect("valid");
        assert_eq!(
            (h.name(), h.port(), h.to_string().as_str()),
            ("api.openai.com", 443, "api.openai.com")
        );
        assert_eq!(
            Host::parse("example.com:8443").expect("valid").to_string(),
            "example.com:8443"
        );
        assert_eq!(
            Host::parse("10.0.0.1").expect("valid").ip(),
            Some("10.0.0.1".parse().expect("ip"))
        );
        for bad in [
            "",
            "https://api.openai.com",
            "*.openai.com",
            "a..b",
            "-a.com",
            "a.com:0",
            "a.com:99999",
            "::1",
            "1.2.3.999",
            "a_b.com",
            "host/path",
        ] {
            assert!(Host::parse(bad).is_err(), "{bad} accepted");
        }
        assert!(
            Host::parse("api.openai.com")
                .expect("valid")
                .is_named_by("api.openai.com:443")
        );
        assert!(
            !Host::parse("api.openai.com")
                .expect("valid")
                .is_named_by("evil.example")
        );
    }

    #[test]
    fn policies_from_presets_hosts_and_words() {
        let anthropic = Policy::from_words("anthropic", None, false).expect("preset");
        assert_eq!(
            anthropic.header.headers(),
            [
                ("x-api-key", HeaderForm::XApiKey),
                ("authorization", HeaderForm::AuthorizationBearer)
            ]
        );
        let p = Policy::from_words("openai", None, false).expect("preset");
        assert_eq!(p.header, HeaderForm::AuthorizationBearer);
        assert_eq!(p.spec().hosts, ["api.openai.com"]);
        // The stored form reads back as the same policy.
        assert_eq!(Policy::from_spec(&p.spec()), Ok(p));
        let p = Policy::from_words(
            "a.example, b.example:8443,a.example",
            Some("x-api-key"),
            true,
        )
        .expect("hosts");
        assert_eq!(p.spec().hosts, ["a.example", "b.example:8443"]);
        assert!(p.always);
        assert_eq!(
            Policy::from_spec(&PolicySpec::default()),
            Err(PolicyError::Empty)
        );
        assert!(matches!(
            Policy::from_words("anthropic", Some("cookie"), false),
            Err(PolicyError::Header(_))
        ));
        let both = PolicySpec {
            preset: Some("openai".into()),
            hosts: vec!["evil.example".into()],
            ..PolicySpec::default()
        };
        assert_eq!(Policy::from_spec(&both), Err(PolicyError::PresetAndHosts));
        let many = (0..=MAX_HOSTS)
            .map(|i| format!("h{i}.example"))
            .collect::<Vec<_>>()
            .join(",");
        assert_eq!(
            Policy::from_words(&many, None, false),
            Err(PolicyError::TooMany)
        );
        assert!(matches!(
            Policy::from_spec(&PolicySpec {
                preset: Some("aws".into()),
                ..PolicySpec::default()
            }),
            Err(PolicyError::Preset(_))
        ));
    }

    #[test]
    fn a_secrets_own_policy_wins_and_only_always_resists_waiving() {
        let own = Policy::from_words("openai", None, false).expect("ok");
        let always = Policy {
            always: true,
            ..own.clone()
        };
        let wide = Policy::from_words("evil.example", None, false).expect("ok");
        assert_eq!(
            brokering(Some(&own), Some(&wide), false),
            Brokering::Brokered(&own)
        );
        assert_eq!(brokering(Some(&own), None, true), Brokering::Waived);
        assert_eq!(
            brokering(Some(&own), Some(&wide), true),
            Brokering::Brokered(&own)
        );
        assert_eq!(
            brokering(Some(&always), None, true),
            Brokering::Brokered(&always)
        );
        assert_eq!(
            brokering(None, Some(&wide), false),
            Brokering::Brokered(&wide)
        );
        // Waiving an ad-hoc request is just not asking for it.
        assert_eq!(
            brokering(None, Some(&wide), true),
            Brokering::Brokered(&wide)
        );
        assert_eq!(brokering(None, None, true), Brokering::Real);
    }

    #[test]
    fn placeholders_keep_shape_and_prefix_and_differ_per_draw() {
        let value = b"sk-proj-Ab3dE5fG7hI9jK1lM3nO5pQ7rS9tU1vW3xY5z_-09AB";
        let mut rng = StdRng::seed_from_u64(1);
        let a = placeholder(value, &mut rng).expect("ok");
        let b = placeholder(value, &mut rng).expect("ok");
        assert_ne!(a, b);
        assert_ne!(a.as_slice(), value.as_slice());
        assert_eq!(a.len(), value.len());
        assert!(a.starts_with(b"sk-proj-"));
        for (x, y) in a.iter().zip(value) {
            assert_eq!(x.is_ascii_digit(), y.is_ascii_digit());
            assert_eq!(x.is_ascii_lowercase(), y.is_ascii_lowercase());
            assert_eq!(x.is_ascii_uppercase(), y.is_ascii_uppercase());
            if !y.is_ascii_alphanumeric() {
                assert_eq!(x, y);
            }
        }
        assert_eq!(
            placeholder(b"short-1234", &mut rng),
            Err(ValueError::TooShort)
        );
        assert_eq!(
            placeholder(b"has a space in it and is long enough 1234567890", &mut rng),
            Err(ValueError::NotAToken)
        );
        assert_eq!(
            placeholder(b"line\nbreak", &mut rng),
            Err(ValueError::NotAToken)
        );
    }

    #[test]
    fn a_github_placeholder_never_has_a_valid_checksum() {
        const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
        let mut rng = StdRng::seed_from_u64(9);
        for _ in 0..200 {
            let p = placeholder(b"ghp_ABCDEFGHIJKLMNOPQRSTUVWXYZabcd012345", &mut rng).expect("ok");
            let mut fixed = p.clone();
            spoil_github_checksum(&mut fixed);
            assert_eq!(
                fixed, p,
                "spoiling twice changes nothing: the checksum is already wrong"
            );
        }
        // A token whose checksum is right gets it spoiled.
        let mut token = b"ghp_000000000000000000000000000000000000".to_vec();
        let mut n = crc32fast::hash(&token[4..34]);
        for i in (34..40).rev() {
            token[i] = BASE62[(n % 62) as usize];
            n /= 62;
        }
        let valid = token.clone();
        spoil_github_checksum(&mut token);
        assert_ne!(token, valid);
    }

    #[test]
    fn substitution_only_on_an_exact_match_in_the_forms_header() {
        let real = split(b"REAL-VALUE-123");
        let ph = b"FAKE-VALUE-987";
        let bearer = HeaderForm::AuthorizationBearer;
        assert_eq!(
            substitute(bearer, b"Bearer FAKE-VALUE-987", ph, &real)
                .as_deref()
                .map(Vec::as_slice),
            Some(b"Bearer REAL-VALUE-123".as_slice())
        );
        assert_eq!(
            substitute(bearer, b"token FAKE-VALUE-987", ph, &real)
                .as_deref()
                .map(Vec::as_slice),
            Some(b"token REAL-VALUE-123".as_slice())
        );
        for sent in [
            &b"Bearer FAKE-VALUE-9870"[..],
            b"Bearer  FAKE-VALUE-987",
            b"FAKE-VALUE-987",
            b"Basic FAKE-VALUE-987",
            b"Bearer xFAKE-VALUE-987",
            b"Bearer",
        ] {
            assert!(
                substitute(bearer, sent, ph, &real).is_none(),
                "{}",
                String::from_utf8_lossy(sent)
            );
        }
        assert_eq!(
            substitute(HeaderForm::XApiKey, ph, ph, &real)
                .as_deref()
                .map(Vec::as_slice),
            Some(b"REAL-VALUE-123".as_slice())
        );
        assert!(substitute(HeaderForm::XApiKey, b"Bearer FAKE-VALUE-987", ph, &real).is_none());
        let basic = format!("Basic {}", STANDARD.encode("x-access-token:FAKE-VALUE-987"));
        let out =
            substitute(HeaderForm::BasicPassword, basic.as_bytes(), ph, &real).expect("match");
        assert_eq!(
            out.as_slice(),
            format!("Basic {}", STANDARD.encode("x-access-token:REAL-VALUE-123")).as_bytes()
        );
        let other = format!("Basic {}", STANDARD.encode("x-access-token:other"));
        assert!(substitute(HeaderForm::BasicPassword, other.as_bytes(), ph, &real).is_none());
        assert!(substitute(HeaderForm::BasicPassword, b"Basic !!!", ph, &real).is_none());
    }

    #[test]
    fn responses_get_the_placeholder_across_any_chunking() {
        let real = split(b"REAL-VALUE-123");
        let swaps = [Swap {
            real: &real,
            placeholder: b"FAKE-VALUE-987",
        }];
        let text = b"data: {\"echo\":\"REAL-VALUE-123\"}\n\nREAL-VALUE-12REAL-VALUE-123 end REAL-VALUE-123";
        let want = b"data: {\"echo\":\"FAKE-VALUE-987\"}\n\nREAL-VALUE-12FAKE-VALUE-987 end FAKE-VALUE-987";
        for size in 1..text.len() {
            let mut stream = StreamSwap::default();
            let mut out = Vec::new();
            for chunk in text.chunks(size) {
                out.extend_from_slice(&stream.push(chunk, &swaps));
            }
            out.extend_from_slice(&stream.finish());
            assert_eq!(out, want, "chunks of {size}");
            assert_eq!(stream.replaced, 3);
        }
        // Nothing that cannot be a value's start is held back (an SSE event goes at once).
        let mut stream = StreamSwap::default();
        assert_eq!(
            stream.push(b"data: x\n\n", &swaps).as_slice(),
            b"data: x\n\n"
        );
        assert_eq!(stream.push(b"data: REAL-", &swaps).as_slice(), b"data: ");
    }

    proptest::proptest! {
        #[test]
        fn streamed_replacement_equals_whole_replacement(
            text in proptest::collection::vec(proptest::prop_oneof![proptest::strategy::Just(b"REAL-1".to_vec()), proptest::strategy::Just(b"RE".to_vec()), proptest::collection::vec(0u8..=255, 0..5)], 0..20),
            cuts in proptest::collection::vec(1usize..9, 1..40),
        ) {
            let real = split(b"REAL-1");
            let swaps = [Swap { real: &real, placeholder: b"FAKE-2" }];
            let text: Vec<u8> = text.concat();
            let mut whole = text.clone();
            replace_in(&mut whole, &swaps);
            let mut stream = StreamSwap::default();
            let mut out = Vec::new();
            let mut rest = text.as_slice();
            for cut in cuts.iter().cycle() {
                if rest.is_empty() { break; }
                let (now, later) = rest.split_at((*cut).min(rest.len()));
                out.extend_from_slice(&stream.push(now, &swaps));
                rest = later;
            }
            out.extend_from_slice(&stream.finish());
            proptest::prop_assert_eq!(out, whole);
        }
    }
}
