//! Environments and identities (DESIGN §12): a secret checklist of the names in your scope,
//! other names typed freely (flagged when nothing of that name is visible to you), the names
//! added and removed shown before anything is saved, and the save sent with `If-Match` at the
//! revision the form was read at, so two editors never overwrite each other silently. For an
//! identity, the impact of a change: names it starts reserving, names a change releases to
//! every run (confirmed explicitly, as the API requires), the keys bound to it.

use std::collections::BTreeSet;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use maud::html;
use serde_json::json;

use super::layout::{self, Section, confirm_by_name, empty, form_error, page, time_at};
use super::{Page, Routes, Shared, Signed, Ui, field, form_pairs, typed, urlencode};
use crate::api::{KeyInfo, ListInfo, SecretInfo};
use crate::core::perm::Action;
use crate::core::resolve::Scope;

/// Environments or identities.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Environment,
    Identity,
}

impl Kind {
    fn plural(self) -> &'static str {
        match self {
            Self::Environment => "environments",
            Self::Identity => "identities",
        }
    }
    fn one(self) -> &'static str {
        match self {
            Self::Environment => "environment",
            Self::Identity => "identity",
        }
    }
    fn title(self) -> &'static str {
        match self {
            Self::Environment => "Environments",
            Self::Identity => "Identities",
        }
    }
    fn section(self) -> Section {
        match self {
            Self::Environment => Section::Environments,
            Self::Identity => Section::Identities,
        }
    }
    fn api(self) -> String {
        format!("/v1/{}", self.plural())
    }
}

pub(super) fn routes() -> Routes {
    let mut routes = Routes::new();
    for kind in [Kind::Environment, Kind::Identity] {
        let base = format!("/ui/{}", kind.plural());
        routes = routes
            .route(
                &base,
                get(move |ui: Shared, signed: Signed| list(ui, signed, kind)),
            )
            .route(
                &format!("{base}/new"),
                get(move |ui: Shared, signed: Signed| new_page(ui, signed, kind)).post(
                    move |ui: Shared, signed: Signed, body: Bytes| save(ui, signed, kind, body),
                ),
            )
            .route(
                &format!("{base}/{{name}}"),
                get(move |ui: Shared, signed: Signed, name: Path<String>| {
                    edit_page(ui, signed, kind, name)
                })
                .post(
                    move |ui: Shared, signed: Signed, name: Path<String>, body: Bytes| {
                        save_existing(ui, signed, kind, name, body)
                    },
                ),
            )
            .route(
                &format!("{base}/{{name}}/delete"),
                get(move |ui: Shared, signed: Signed, name: Path<String>| {
                    delete_page(ui, signed, kind, name)
                })
                .post(
                    move |ui: Shared, signed: Signed, name: Path<String>, body: Bytes| {
                        delete(ui, signed, kind, name, body)
                    },
                ),
            );
    }
    routes
}

async fn lists(ui: &Ui, signed: &Signed, kind: Kind) -> Result<Vec<ListInfo>, Response> {
    let answer = ui.api(signed, Method::GET, &kind.api(), None, None).await?;
    if !answer.ok() {
        return Err(layout::refused(
            signed,
            &format!("read {}", kind.plural()),
            &answer,
        ));
    }
    answer.into()
}

/// The secret names the caller can see: team, and their own personal ones (for a checklist).
async fn visible(ui: &Ui, signed: &Signed, kind: Kind) -> Result<Vec<SecretInfo>, Response> {
    let answer = ui
        .api(signed, Method::GET, "/v1/secrets", None, None)
        .await?;
    let mut secrets: Vec<SecretInfo> = if answer.ok() {
        answer.into()?
    } else {
        Vec::new()
    };
    if kind == Kind::Identity {
        secrets.retain(|s| s.scope == Scope::Team);
    }
    Ok(secrets)
}

/// Keys bound to identities (owners and admins see them; others get none).
async fn bound_keys(ui: &Ui, signed: &Signed) -> Result<Vec<KeyInfo>, Response> {
    if !signed.caller.allows(Action::ManageAllKeys) {
        return Ok(Vec::new());
    }
    let answer = ui
        .api(signed, Method::GET, "/v1/api-keys", None, None)
        .await?;
    if !answer.ok() {
        return Ok(Vec::new());
    }
    let keys: Vec<KeyInfo> = answer.into()?;
    Ok(keys
        .into_iter()
        .filter(|k| k.identity.is_some() && k.revoked_at.is_none())
        .collect())
}

async fn list(State(ui): Shared, signed: Signed, kind: Kind) -> Page {
    let (all, secrets, keys) = match (
        lists(&ui, &signed, kind).await,
        visible(&ui, &signed, kind).await,
        bound_keys(&ui, &signed).await,
    ) {
        (Ok(a), Ok(s), Ok(k)) => (a, s, k),
        (Err(p), _, _) | (_, Err(p), _) | (_, _, Err(p)) => return Err(p),
    };
    let names: BTreeSet<&str> = secrets.iter().map(|s| s.name.as_str()).collect();
    let manage = signed.caller.allows(Action::ManageEnvironments);
    let body = html! {
        div.bar {
            div {
                h1 { (kind.title()) }
                p.lead { (match kind {
                    Kind::Environment => "An environment is a list of secret names: a run that names it receives those secrets (its default allowlist).",
                    Kind::Identity => "An agent identity reserves team secrets: only runs of keys bound to it receive them.",
                }) }
            }
            @if manage { div.actions { a.button href={ "/ui/" (kind.plural()) "/new" } { "New " (kind.one()) } } }
        }
        @if all.is_empty() {
            (empty(&format!("No {} yet.", kind.plural()), &html! {
                @if manage { a href={ "/ui/" (kind.plural()) "/new" } { "Create one" } ", or from a terminal: " }
                code { "latch " (if kind == Kind::Environment { "env" } else { "identity" }) " set NAME --secrets A,B" }
            }))
        } @else {
            table {
                thead { tr {
                    th scope="col" { "Name" } th scope="col" { "Description" } th scope="col" { "Secrets" }
                    @if kind == Kind::Identity { th scope="col" { "Bound keys" } }
                    th scope="col" { "Updated" }
                } }
                tbody {
                    @for l in &all {
                        tr {
                            td data-label="Name" { a href={ "/ui/" (kind.plural()) "/" (l.name) } { (l.name) } }
                            td data-label="Description" { (l.description) }
                            td data-label="Secrets" {
                                @match &l.secrets {
                                    None => { span.badge { "every secret in the pool" } }
                                    Some(list) => {
                                        (list.len())
                                        @let unknown: Vec<&String> = list.iter().filter(|n| !names.contains(n.as_str())).collect();
                                        @if !unknown.is_empty() {
                                            " " span.badge.warn title="No secret of these names is visible to you" { (unknown.len()) " unknown to you" }
                                        }
                                    }
                                }
                            }
                            @if kind == Kind::Identity {
                                td data-label="Bound keys" { (keys.iter().filter(|k| k.identity.as_deref() == Some(l.name.as_str())).count()) }
                            }
                            td data-label="Updated" { (time_at(l.updated_at, signed.now)) }
                        }
                    }
                }
            }
        }
    };
    Ok(layout::html_page(
        StatusCode::OK,
        &page(kind.title(), Some(&signed), kind.section(), &body),
    ))
}

/// What the edit form holds: from the stored list, or from a form sent back.
#[derive(Default, Clone)]
struct Draft {
    name: String,
    description: String,
    /// `None`: no list (an environment's "every secret in the pool").
    secrets: Option<Vec<String>>,
    revision: Option<u64>,
}

fn draft_of(pairs: &[(String, String)], name: Option<&str>) -> Draft {
    let every = field(pairs, "every").is_some();
    let mut names: Vec<String> = pairs
        .iter()
        .filter(|(k, _)| k == "secret")
        .map(|(_, v)| v.clone())
        .collect();
    for extra in field(pairs, "other")
        .unwrap_or("")
        .split(|c: char| c == ',' || c.is_whitespace())
    {
        if !extra.is_empty() && !names.iter().any(|n| n == extra) {
            names.push(extra.to_owned());
        }
    }
    names.sort();
    names.dedup();
    Draft {
        name: name.map_or_else(
            || field(pairs, "name").unwrap_or("").trim().to_owned(),
            str::to_owned,
        ),
        description: field(pairs, "description").unwrap_or("").to_owned(),
        secrets: (!every).then_some(names),
        revision: field(pairs, "revision").and_then(|r| r.parse().ok()),
    }
}

async fn new_page(State(ui): Shared, signed: Signed, kind: Kind) -> Page {
    let draft = Draft {
        secrets: Some(Vec::new()),
        ..Draft::default()
    };
    render_form(&ui, &signed, kind, &draft, true, None, StatusCode::OK).await
}

async fn one(
    ui: &Ui,
    signed: &Signed,
    kind: Kind,
    name: &str,
) -> Result<(ListInfo, Option<String>), Response> {
    let answer = ui
        .api(
            signed,
            Method::GET,
            &format!("{}/{}", kind.api(), urlencode(name)),
            None,
            None,
        )
        .await?;
    if answer.status == StatusCode::NOT_FOUND || answer.status == StatusCode::BAD_REQUEST {
        return Err(layout::problem_page(
            Some(signed),
            StatusCode::NOT_FOUND,
            &format!("No such {}", kind.one()),
            &layout::sentence(answer.detail()),
        ));
    }
    if !answer.ok() {
        return Err(layout::refused(
            signed,
            &format!("read this {}", kind.one()),
            &answer,
        ));
    }
    let etag = answer.etag.clone();
    Ok((answer.into()?, etag))
}

async fn edit_page(
    State(ui): Shared,
    signed: Signed,
    kind: Kind,
    Path(name): Path<String>,
) -> Page {
    let (list, _) = one(&ui, &signed, kind, &name).await?;
    let draft = Draft {
        name: list.name.clone(),
        description: list.description.clone(),
        secrets: list.secrets.clone(),
        revision: Some(list.revision),
    };
    render_form(&ui, &signed, kind, &draft, false, None, StatusCode::OK).await
}

#[allow(clippy::too_many_lines)] // one form
async fn render_form(
    ui: &Ui,
    signed: &Signed,
    kind: Kind,
    draft: &Draft,
    new: bool,
    error: Option<&str>,
    status: StatusCode,
) -> Page {
    let (secrets, keys) = match (
        visible(ui, signed, kind).await,
        bound_keys(ui, signed).await,
    ) {
        (Ok(s), Ok(k)) => (s, k),
        (Err(p), _) | (_, Err(p)) => return Err(p),
    };
    let manage = signed.caller.allows(Action::ManageEnvironments);
    let chosen: BTreeSet<&str> = draft.secrets.iter().flatten().map(String::as_str).collect();
    let mut checklist: Vec<(&str, Vec<&str>)> = Vec::new();
    for s in &secrets {
        match checklist.iter_mut().find(|(n, _)| *n == s.name) {
            Some((_, scopes)) => scopes.push(if s.scope == Scope::Team {
                "team"
            } else {
                "personal"
            }),
            None => checklist.push((
                &s.name,
                vec![if s.scope == Scope::Team {
                    "team"
                } else {
                    "personal"
                }],
            )),
        }
    }
    checklist.sort_by(|a, b| a.0.cmp(b.0));
    let known: BTreeSet<&str> = checklist.iter().map(|(n, _)| *n).collect();
    let others: Vec<&str> = chosen
        .iter()
        .copied()
        .filter(|n| !known.contains(n))
        .collect();
    let action = if new {
        format!("/ui/{}/new", kind.plural())
    } else {
        format!("/ui/{}/{}", kind.plural(), draft.name)
    };
    let bound: Vec<&KeyInfo> = keys
        .iter()
        .filter(|k| !new && k.identity.as_deref() == Some(draft.name.as_str()))
        .collect();
    let title = if new {
        format!("New {}", kind.one())
    } else {
        format!(
            "{} {}",
            layout::sentence(kind.one()).trim_end_matches('.'),
            draft.name
        )
    };
    let body = html! {
        p { a href={ "/ui/" (kind.plural()) } { "← " (kind.title()) } }
        h1 { (title) }
        @if !manage {
            div.notice { p { "You can read this " (kind.one()) "; a " (signed.caller.role().as_str()) " may not change it." } }
        }
        form.stack method="post" action=(action) data-guard {
            input type="hidden" name="step" value="review";
            @if let Some(revision) = draft.revision { input type="hidden" name="revision" value=(revision); }
            @if new {
                div.field {
                    label for="name" { "Name" }
                    input #name type="text" name="name" required maxlength="64" value=(draft.name) autocomplete="off" spellcheck="false";
                }
            }
            div.field {
                label for="description" { "Description" }
                input #description type="text" name="description" maxlength="1024" value=(draft.description) disabled[!manage];
            }
            fieldset {
                legend { "Secrets" }
                @if kind == Kind::Environment {
                    label {
                        input type="checkbox" name="every" value="1" checked[draft.secrets.is_none()] disabled[!manage];
                        span { "No list: runs that name this environment receive every secret in their pool" }
                    }
                } @else {
                    p.hint { "Team secrets attached here are reserved: only runs of keys bound to this identity receive them." }
                }
                @if checklist.is_empty() {
                    p.muted { "No secrets are visible to you yet." }
                }
                @for (name, scopes) in &checklist {
                    label {
                        input type="checkbox" name="secret" value=(name) checked[chosen.contains(name)] disabled[!manage];
                        code { (name) } " " span.badge { (scopes.join(" + ")) }
                    }
                }
                div.field {
                    label for="other" { "Other names " span.hint { "(comma or space separated: e.g. another member's personal secret)" } }
                    input #other type="text" name="other" value=(others.join(", ")) autocomplete="off" spellcheck="false" disabled[!manage];
                    @if !others.is_empty() {
                        p.hint { span.badge.warn { "no such secret for you" } " " (others.join(", ")) }
                    }
                }
            }
            (form_error(error))
            @if manage {
                div.actions {
                    button type="submit" { "Review changes" }
                    a.button.secondary href={ "/ui/" (kind.plural()) } { "Cancel" }
                    @if !new { a.button.secondary href={ "/ui/" (kind.plural()) "/" (draft.name) "/delete" } { "Delete…" } }
                }
            }
        }
        @if kind == Kind::Identity && !new {
            h2 { "Keys bound to it" }
            @if !signed.caller.allows(Action::ManageAllKeys) {
                p.muted { "Owners and admins see the keys bound to an identity." }
            } @else if bound.is_empty() {
                p.muted { "No key is bound to it. " a href="/ui/settings/api-keys" { "Create a team key bound to it" } "." }
            } @else {
                ul { @for k in &bound { li { (k.name) " " code { (k.preview) } } } }
            }
        }
    };
    Ok(layout::html_page(
        status,
        &page(&title, Some(signed), kind.section(), &body),
    ))
}

async fn save(State(ui): Shared, signed: Signed, kind: Kind, body: Bytes) -> Page {
    let pairs = form_pairs(body).await;
    let draft = draft_of(&pairs, None);
    step(&ui, &signed, kind, draft, &pairs, true).await
}

async fn save_existing(
    State(ui): Shared,
    signed: Signed,
    kind: Kind,
    Path(name): Path<String>,
    body: Bytes,
) -> Page {
    let pairs = form_pairs(body).await;
    let draft = draft_of(&pairs, Some(&name));
    step(&ui, &signed, kind, draft, &pairs, false).await
}

/// Review (the diff) or save (with `If-Match`, and the names to release when confirmed).
async fn step(
    ui: &Ui,
    signed: &Signed,
    kind: Kind,
    draft: Draft,
    pairs: &[(String, String)],
    new: bool,
) -> Page {
    if draft.name.is_empty() {
        return render_form(
            ui,
            signed,
            kind,
            &draft,
            new,
            Some("give it a name"),
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
    }
    let current = if new {
        None
    } else {
        Some(one(ui, signed, kind, &draft.name).await?.0)
    };
    if field(pairs, "step") != Some("save") {
        return Ok(review(signed, kind, &draft, current.as_ref(), new, &[]));
    }
    let release: Vec<&str> = pairs
        .iter()
        .filter(|(k, _)| k == "release")
        .map(|(_, v)| v.as_str())
        .collect();
    let mut body = json!({ "description": draft.description, "secrets": draft.secrets });
    if kind == Kind::Identity {
        body["release"] = json!(release);
    }
    let if_match = draft.revision.map(|r| format!("\"{r}\""));
    let path = format!("{}/{}", kind.api(), urlencode(&draft.name));
    let answer = ui
        .api(signed, Method::PUT, &path, Some(&body), if_match.as_deref())
        .await?;
    if answer.ok() {
        return Ok(
            Redirect::to(&format!("/ui/{}/{}", kind.plural(), urlencode(&draft.name)))
                .into_response(),
        );
    }
    match (answer.status, answer.code()) {
        (StatusCode::CONFLICT, "would_release") => {
            let names: Vec<String> = answer.body["would_release"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            Ok(review(signed, kind, &draft, current.as_ref(), new, &names))
        }
        (StatusCode::PRECONDITION_FAILED, _) => {
            let message = format!(
                "someone changed this {} after you opened it. This is how it is now: make your change again",
                kind.one()
            );
            let fresh = current.map_or(draft.clone(), |l| Draft {
                name: l.name,
                description: l.description,
                secrets: l.secrets,
                revision: Some(l.revision),
            });
            render_form(
                ui,
                signed,
                kind,
                &fresh,
                new,
                Some(&message),
                StatusCode::CONFLICT,
            )
            .await
        }
        (StatusCode::FORBIDDEN, _) => Ok(layout::refused(
            signed,
            &format!("change {}", kind.plural()),
            &answer,
        )),
        _ => {
            render_form(
                ui,
                signed,
                kind,
                &draft,
                new,
                Some(answer.detail()),
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await
        }
    }
}

/// The names added and removed, before saving; for an identity, what the change releases.
fn review(
    signed: &Signed,
    kind: Kind,
    draft: &Draft,
    current: Option<&ListInfo>,
    new: bool,
    release: &[String],
) -> Response {
    let before: BTreeSet<&str> = current
        .and_then(|l| l.secrets.as_ref())
        .into_iter()
        .flatten()
        .map(String::as_str)
        .collect();
    let after: BTreeSet<&str> = draft.secrets.iter().flatten().map(String::as_str).collect();
    let added: Vec<&str> = after.difference(&before).copied().collect();
    let removed: Vec<&str> = before.difference(&after).copied().collect();
    let was_every = current.is_some_and(|l| l.secrets.is_none());
    let action = if new {
        format!("/ui/{}/new", kind.plural())
    } else {
        format!("/ui/{}/{}", kind.plural(), draft.name)
    };
    let description_changed = current.is_none_or(|l| l.description != draft.description);
    let body = html! {
        h1 { "Review: " (draft.name) }
        div.diff {
            @if draft.secrets.is_none() && !was_every { p { strong { "No list from now on:" } " runs receive every secret in their pool." } }
            @if was_every && draft.secrets.is_some() { p { strong { "A list from now on" } " (before: every secret in the pool)." } }
            @if added.is_empty() && removed.is_empty() && !description_changed && draft.secrets.is_some() != was_every {
                p { "Nothing changes." }
            }
            @if !added.is_empty() {
                h2 { "Added" }
                ul { @for n in &added { li.added { "+ " code { (n) } @if kind == Kind::Identity { " — runs not as this identity no longer receive it" } } } }
            }
            @if !removed.is_empty() {
                h2 { "Removed" }
                ul { @for n in &removed { li.removed { "− " code { (n) } } } }
            }
            @if description_changed { p { "Description: " (if draft.description.is_empty() { "(none)" } else { &draft.description }) } }
        }
        @if !release.is_empty() {
            div.notice.danger role="alert" {
                p { strong { "This change releases " (release.join(", ")) ":" }
                    " no identity would reserve them any more, so every run of the team could receive them. Confirm to release them." }
            }
        }
        form.stack method="post" action=(action) {
            input type="hidden" name="step" value="save";
            @if new { input type="hidden" name="name" value=(draft.name); }
            @if let Some(revision) = draft.revision { input type="hidden" name="revision" value=(revision); }
            input type="hidden" name="description" value=(draft.description);
            @if draft.secrets.is_none() { input type="hidden" name="every" value="1"; }
            @for n in &after { input type="hidden" name="secret" value=(n); }
            @for n in release {
                label { input type="checkbox" name="release" value=(n) required; span { "Release " code { (n) } " to every run" } }
            }
            div.actions {
                button type="submit" { "Save" }
                a.button.secondary href=(action) { "Back to editing" }
            }
        }
    };
    let status = if release.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::CONFLICT
    };
    layout::html_page(status, &page("Review", Some(signed), kind.section(), &body))
}

async fn delete_page(
    State(ui): Shared,
    signed: Signed,
    kind: Kind,
    Path(name): Path<String>,
) -> Page {
    delete_form(&ui, &signed, kind, &name, None).await
}

async fn delete_form(
    ui: &Ui,
    signed: &Signed,
    kind: Kind,
    name: &str,
    error: Option<&str>,
) -> Page {
    let (list, _) = one(ui, signed, kind, name).await?;
    let keys = bound_keys(ui, signed).await?;
    let bound: Vec<&KeyInfo> = keys
        .iter()
        .filter(|k| k.identity.as_deref() == Some(list.name.as_str()))
        .collect();
    let body = html! {
        div.pane {
            h1 { "Delete " (kind.one()) " " (list.name) "?" }
            @match kind {
                Kind::Environment => { p { "Runs that name it will be refused (unknown environment). Its secrets are not touched." } }
                Kind::Identity => {
                    p { "The team secrets it reserves that no other identity reserves become available to every run: "
                        strong { (list.secrets.clone().unwrap_or_default().join(", ")) } "." }
                    @if !bound.is_empty() {
                        p { "These keys are bound to it and are revoked with it: " strong { @for (i, k) in bound.iter().enumerate() { @if i > 0 { ", " } (k.name) } } "." }
                    }
                }
            }
            (confirm_by_name(
                &format!("/ui/{}/{}/delete", kind.plural(), list.name),
                &list.name,
                &format!("Delete {}", kind.one()),
                &format!("/ui/{}/{}", kind.plural(), list.name),
                error,
            ))
        }
    };
    let status = if error.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    Ok(layout::html_page(
        status,
        &page("Delete", Some(signed), kind.section(), &body),
    ))
}

async fn delete(
    State(ui): Shared,
    signed: Signed,
    kind: Kind,
    Path(name): Path<String>,
    body: Bytes,
) -> Page {
    let pairs = form_pairs(body).await;
    if !typed(&pairs, &name) {
        return delete_form(
            &ui,
            &signed,
            kind,
            &name,
            Some(&format!("type the name `{name}` exactly to delete it")),
        )
        .await;
    }
    let mut path = format!("{}/{}", kind.api(), urlencode(&name));
    if kind == Kind::Identity {
        // Typing the name confirmed what the page listed: the released names and bound keys.
        let (list, _) = one(&ui, &signed, kind, &name).await?;
        let release = list.secrets.unwrap_or_default().join(",");
        path = format!("{path}?force=true&release={}", urlencode(&release));
    }
    let answer = ui.api(&signed, Method::DELETE, &path, None, None).await?;
    if answer.ok() {
        return Ok(Redirect::to(&format!("/ui/{}", kind.plural())).into_response());
    }
    if answer.status == StatusCode::FORBIDDEN {
        return Ok(layout::refused(
            &signed,
            &format!("delete {}", kind.plural()),
            &answer,
        ));
    }
    delete_form(&ui, &signed, kind, &name, Some(answer.detail())).await
}
