//! The page shell and the small pieces every page uses: navigation, the session's times,
//! relative times with the absolute one in `datetime`, badges, empty states, problem pages.

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use maud::{DOCTYPE, Markup, html};

use super::Signed;
use super::assets::url;
use crate::core::perm::Action;
use crate::core::time::{relative, utc};

/// htmx's configuration (DESIGN §12): no inline indicator styles (the CSP would refuse them),
/// no eval, no scripts from swapped content, no history snapshots in `sessionStorage` (a key
/// shown once must never be kept), and answers of every status swapped, since problems render
/// inline.
const HTMX_CONFIG: &str = r#"{"includeIndicatorStyles":false,"allowEval":false,"allowScriptTags":false,"historyCacheSize":0,"selfRequestsOnly":true,"responseHandling":[{"code":"204","swap":false},{"code":"...","swap":true}]}"#;

/// Which section a page belongs to, for the navigation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Section {
    Secrets,
    Environments,
    Identities,
    Runs,
    Audit,
    Settings,
    None,
}

/// A whole page.
pub(super) fn page(
    title: &str,
    signed: Option<&Signed>,
    section: Section,
    body: &Markup,
) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="htmx-config" content=(HTMX_CONFIG);
                meta name="referrer" content="no-referrer";
                title { (title) " · latch" }
                link rel="icon" href=(url("favicon.svg")) type="image/svg+xml";
                link rel="stylesheet" href=(url("app.css"));
                script src=(url("htmx-2.0.11.min.js")) defer {}
                script type="module" src=(url("ui.js")) {}
            }
            body {
                a.skip href="#main" { "Skip to content" }
                @if let Some(signed) = signed {
                    (top(signed, section))
                } @else {
                    header.top {
                        a.brand href="/ui/login" { img src=(url("favicon.svg")) alt=""; "latch" }
                    }
                }
                main #main tabindex="-1" { (body) }
            }
        }
    }
}

/// The header, the navigation and the session banner of a signed-in page.
fn top(signed: &Signed, section: Section) -> Markup {
    let c = &signed.caller;
    let item = |href: &str, label: &str, this: Section| {
        html! {
            li { a href=(href) aria-current=[(section == this).then_some("page")] { (label) } }
        }
    };
    html! {
        header.top {
            a.brand href="/ui/secrets" { img src=(url("favicon.svg")) alt=""; "latch" }
            div.who {
                span { "Team " strong { (c.team_name) } }
                span { "·" }
                span { (signed.name()) }
                span.badge { (c.role().as_str()) }
                span.muted { "key " code { (c.key_id) } }
                span.muted #session data-idle-ends=(signed.idle_ends) data-absolute-ends=(signed.absolute_ends) {
                    "session ends " (time_at(signed.idle_ends, signed.now))
                }
            }
        }
        nav.main aria-label="Main" {
            ul {
                (item("/ui/secrets", "Secrets", Section::Secrets))
                (item("/ui/environments", "Environments", Section::Environments))
                (item("/ui/identities", "Identities", Section::Identities))
                (item("/ui/runs", "Runs", Section::Runs))
                @if c.allows(Action::ReadAudit) {
                    (item("/ui/audit", "Audit", Section::Audit))
                }
                (item("/ui/settings/account", "Settings", Section::Settings))
            }
        }
        div #session-banner.notice.warn role="alert" hidden {
            span data-text {}
            " "
            button.secondary type="button" data-renew { "Stay signed in" }
            a data-sign-in hidden href={ "/ui/login?next=" (super::urlencode(&signed.path)) } { "Sign in again" }
        }
    }
}

/// `at` relative to now, with the absolute time (UTC) in `datetime` and `title`; the page's
/// script puts the reader's local time in `title`.
pub(super) fn time_at(at: i64, now: i64) -> Markup {
    let absolute = utc(at);
    html! { time datetime=(absolute) title=(absolute) { (relative(at, now)) } }
}

/// An optional time, or a word for none.
pub(super) fn time_or(at: Option<i64>, now: i64, none: &str) -> Markup {
    at.map_or_else(|| html! { span.muted { (none) } }, |at| time_at(at, now))
}

/// A page for a problem: its status, a title and what happened, in words.
pub(super) fn problem_page(
    signed: Option<&Signed>,
    status: StatusCode,
    title: &str,
    detail: &str,
) -> Response {
    let body = html! {
        h1 { (title) }
        div.notice.danger role="alert" { p { (detail) } }
        p { a href="/ui/secrets" { "Back to Secrets" } }
    };
    (
        status,
        Html(page(title, signed, Section::None, &body).into_string()),
    )
        .into_response()
}

/// The page for a refusal by the API: 403 with the reason it gave.
pub(super) fn refused(signed: &Signed, what: &str, answer: &super::Answer) -> Response {
    problem_page(
        Some(signed),
        answer.status,
        &format!("You cannot {what}"),
        &format!(
            "{} Ask an owner or admin of the team if you need this.",
            sentence(answer.detail())
        ),
    )
}

/// The page when the store does not answer.
pub(super) fn unavailable() -> Response {
    problem_page(
        None,
        StatusCode::SERVICE_UNAVAILABLE,
        "The platform is unavailable",
        "The database did not answer. Try again in a moment.",
    )
}

/// A message as a sentence: capitalised, ending with a full stop.
pub(super) fn sentence(text: &str) -> String {
    let mut chars = text.chars();
    let mut out: String = chars.next().map_or_else(String::new, |first| {
        first.to_uppercase().chain(chars).collect()
    });
    if !out.ends_with(['.', '!', '?']) && !out.is_empty() {
        out.push('.');
    }
    out
}

/// An HTML answer with `status`.
pub(super) fn html_page(status: StatusCode, markup: &Markup) -> Response {
    (status, Html(markup.clone().into_string())).into_response()
}

/// An empty state: what is missing, and what to do.
pub(super) fn empty(what: &str, todo: &Markup) -> Markup {
    html! { div.empty { p { strong { (what) } } p { (todo) } } }
}

/// The form that confirms a destructive action by typing `name`: its button waits for the
/// name (`ui.js`), and the handler checks it with [`super::typed`].
pub(super) fn confirm_by_name(
    action: &str,
    name: &str,
    button: &str,
    cancel: &str,
    error: Option<&str>,
) -> Markup {
    html! {
        form.stack method="post" action=(action) {
            div.field {
                label for="confirm" { "Type " code { (name) } " to confirm" }
                input #confirm type="text" name="confirm" required autocomplete="off" spellcheck="false"
                    data-confirm-name=(name);
            }
            (form_error(error))
            div.actions {
                button.danger type="submit" { (button) }
                a.button.secondary href=(cancel) { "Cancel" }
            }
        }
    }
}

/// An inline problem for a form.
pub(super) fn form_error(message: Option<&str>) -> Markup {
    html! {
        @if let Some(message) = message {
            div.notice.danger role="alert" #form-error { p.error { (sentence(message)) } }
        }
    }
}
