//! latch's own lines on stderr (DESIGN §11): `latch: error: …`, `latch: warning: …`,
//! `latch: note: …`, `latch: hint: …`, one line each, in words; colour only when stderr is a
//! terminal and `NO_COLOR` is unset. [`Lines`] formats tracing's events so, up to `-v`; the
//! functions print the same kinds directly.

use std::fmt;
use std::io::IsTerminal;

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// Whether latch's lines may be coloured: stderr is a terminal and `NO_COLOR` is unset or empty.
#[must_use]
pub fn colour() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// The kinds of line, with their ANSI colour.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Error,
    Warning,
    Note,
    Hint,
}

impl Kind {
    const fn word(self) -> &'static str {
        match self {
            Self::Error => "error",
            Self::Warning => "warning",
            Self::Note => "note",
            Self::Hint => "hint",
        }
    }
    const fn ansi(self) -> &'static str {
        match self {
            Self::Error => "\x1b[1;31m",
            Self::Warning => "\x1b[1;33m",
            Self::Note => "\x1b[1;36m",
            Self::Hint => "\x1b[1;32m",
        }
    }
}

/// `latch: KIND: ` with the kind coloured when `colour`.
fn prefix(kind: Kind, colour: bool) -> String {
    if colour {
        format!("latch: {}{}:\x1b[0m ", kind.ansi(), kind.word())
    } else {
        format!("latch: {}: ", kind.word())
    }
}

/// Prints `latch: error: MESSAGE`.
pub fn error(message: &str) {
    eprintln!("{}{}", prefix(Kind::Error, colour()), one_line(message));
}

/// Prints `latch: warning: MESSAGE`.
pub fn warning(message: &str) {
    eprintln!("{}{}", prefix(Kind::Warning, colour()), one_line(message));
}

/// Prints `latch: note: MESSAGE`.
pub fn note(message: &str) {
    eprintln!("{}{}", prefix(Kind::Note, colour()), one_line(message));
}

/// Prints `latch: hint: MESSAGE`.
pub fn hint(message: &str) {
    eprintln!("{}{}", prefix(Kind::Hint, colour()), one_line(message));
}

/// Prints a command-line parsing failure as latch's lines (`latch: error: …` and hints: the
/// tips and the usage clap gives) and returns the exit code: 2, or 0 for `--help` and
/// `--version`, which print as clap writes them. Under `--json` the error is also one JSON
/// object on stdout.
#[must_use]
pub fn clap_error(error: &clap::Error) -> u8 {
    use clap::error::ErrorKind;
    if matches!(
        error.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        let _ = error.print();
        return u8::try_from(error.exit_code()).unwrap_or(crate::core::exit::USAGE);
    }
    let text = error.render().to_string();
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    let first = lines.next().unwrap_or("bad arguments");
    let message = first.strip_prefix("error: ").unwrap_or(first);
    self::error(message);
    for line in lines {
        if let Some(tip) = line.strip_prefix("tip: ") {
            hint(tip);
        } else if let Some(usage) = line.strip_prefix("Usage: ") {
            hint(&format!("usage: {usage}"));
        } else if line.starts_with("For more information") {
            // The usage hint says enough; `--help` is where everyone looks anyway.
        } else {
            hint(line);
        }
    }
    // A secret name refused for what it would change in the child (DESIGN §5) is configuration.
    let refused_name = matches!(
        std::error::Error::source(error)
            .and_then(|e| e.downcast_ref::<crate::core::name::NameError>()),
        Some(crate::core::name::NameError::Refused { .. })
    );
    if std::env::args_os().any(|a| a == "--json") {
        let code = if refused_name {
            "refused_name"
        } else {
            "usage"
        };
        let object = serde_json::json!({"error": {"code": code, "message": message}});
        println!("{object}");
    }
    if refused_name {
        crate::core::exit::CONFIG
    } else {
        crate::core::exit::USAGE
    }
}

/// A message on one line: line breaks become spaces.
fn one_line(message: &str) -> String {
    message.replace(['\n', '\r'], " ")
}

/// Formats tracing's events as latch's lines: the message and its fields' values in words, no
/// time, no module path, no level names in capitals.
#[derive(Debug, Clone, Copy)]
pub struct Lines {
    /// Colour the kind.
    pub colour: bool,
}

impl<S, N> FormatEvent<S, N> for Lines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let kind = match *event.metadata().level() {
            Level::ERROR => Kind::Error,
            Level::WARN => Kind::Warning,
            _ => Kind::Note,
        };
        let mut visitor = Message::default();
        event.record(&mut visitor);
        writeln!(
            writer,
            "{}{}",
            prefix(kind, self.colour),
            one_line(&visitor.text())
        )
    }
}

/// The event's message, then its other fields as `name value`.
#[derive(Default)]
struct Message {
    message: String,
    fields: Vec<String>,
}

impl Message {
    fn text(&self) -> String {
        if self.fields.is_empty() {
            self.message.clone()
        } else {
            format!("{} ({})", self.message, self.fields.join(", "))
        }
    }
}

impl tracing::field::Visit for Message {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        if field.name() == "message" {
            value.clone_into(&mut self.message);
        } else {
            self.fields.push(format!("{} {value}", field.name()));
        }
    }

    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            self.message = format!("{value:?}");
        } else {
            self.fields.push(format!("{} {value:?}", field.name()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_name_their_kind_and_colour_only_when_asked() {
        assert_eq!(prefix(Kind::Warning, false), "latch: warning: ");
        assert_eq!(prefix(Kind::Error, true), "latch: \x1b[1;31merror:\x1b[0m ");
        assert_eq!(one_line("a\nb\r\nc"), "a b  c");
    }
}
