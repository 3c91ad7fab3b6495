//! `latch team show|set`: the team's settings (owners and admins change them).

use clap::{Subcommand, ValueEnum};
use reqwest::Method;

use super::context::{self, outln};
use super::{Error, Global};
use crate::api::{TeamInfo, UpdateTeam, Whoami};
use crate::core::byok::TeamSetting;

/// `latch team …`
#[derive(Debug, Subcommand)]
pub enum TeamCommand {
    /// Show the team's settings.
    Show,
    /// Change the team's settings (owners and admins).
    Set {
        /// Whether members' own provider keys (latch byok) may stand in for the team's
        /// OPENAI_API_KEY, ANTHROPIC_API_KEY and GEMINI_API_KEY in their local runs.
        #[arg(long, value_enum, value_name = "SETTING")]
        byok: ByokSetting,
    },
}

/// `--byok`'s values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ByokSetting {
    /// Members' device keys may be used in their local runs.
    Allowed,
    /// Device keys are never used in this team's runs; `latch run --byok` is refused.
    Forbidden,
}

/// The BYOK setting in words, for `whoami` and `team show`.
#[must_use]
pub(crate) fn byok_words(setting: TeamSetting) -> &'static str {
    match setting {
        TeamSetting::Allowed => {
            "allowed (members' own provider keys may stand in for the team's in their local runs)"
        }
        TeamSetting::Forbidden => "forbidden (members' own provider keys are never used)",
    }
}

/// Runs a `latch team` command.
///
/// # Errors
/// [`Error`] from the platform.
pub(super) async fn run(command: TeamCommand, global: &Global) -> Result<u8, Error> {
    let client = context::client(global)?;
    let info = match command {
        TeamCommand::Show => {
            let me: Whoami = client.call::<_, ()>(Method::GET, "v1/whoami", None).await?;
            TeamInfo {
                name: me.team,
                byok: me.byok,
            }
        }
        TeamCommand::Set { byok } => {
            let body = UpdateTeam {
                byok: match byok {
                    ByokSetting::Allowed => TeamSetting::Allowed,
                    ByokSetting::Forbidden => TeamSetting::Forbidden,
                },
            };
            client.call(Method::PATCH, "v1/team", Some(&body)).await?
        }
    };
    if global.json {
        context::print_json(&info)?;
    } else {
        outln!("team: {}\nbyok: {}", info.name, byok_words(info.byok))?;
    }
    Ok(0)
}
