//! Secrets (DESIGN §12): the list with filters, scope, shadowed and reserved-for badges; the
//! add and edit pane whose value is sealed in the browser (the field has no `name`, so no form
//! can ever send it); delete by typing the name. Values are write-only: no page shows one, and
//! a form shown again after an error keeps name and description, never the value.

use std::collections::{BTreeMap, BTreeSet};

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::{Value, json};

use super::layout::{self, Section, confirm_by_name, empty, form_error, page, time_at};
use super::{Page, Routes, Shared, Signed, Ui, field, form_pairs, typed, urlencode};
use crate::api::{ListInfo, SealKey, SecretInfo};
use crate::core::perm::Action;
use crate::core::resolve::Scope;

pub(super) fn routes() -> Routes {
    Routes::new()
        .route("/ui/secrets", get(list))
        .route("/ui/secrets/new", get(new_page).post(create))
        .route("/ui/secrets/{scope}/{name}", get(edit_page).post(update))
        .route(
            "/ui/secrets/{scope}/{name}/delete",
            get(delete_page).post(delete),
        )
}

#[derive(Deserialize, Default)]
struct Filter {
    #[serde(default)]
    q: String,
    #[serde(default)]
    scope: String,
    #[serde(default)]
    env: String,
    #[serde(default)]
    all: Option<String>,
}

/// What the list needs besides the secrets: which identities reserve a name, which
/// environments use it.
struct Context {
    reserved: BTreeMap<String, Vec<String>>,
    used_in: BTreeMap<String, Vec<String>>,
    environments: Vec<ListInfo>,
}

async fn context(ui: &Ui, signed: &Signed) -> Result<Context, Response> {
    let mut reserved: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut used_in: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let identities = ui
        .api(signed, Method::GET, "/v1/identities", None, None)
        .await?;
    if identities.ok() {
        for list in identities.into::<Vec<ListInfo>>()? {
            for name in list.secrets.unwrap_or_default() {
                reserved
                    .entry(name.to_ascii_uppercase())
                    .or_default()
                    .push(list.name.clone());
            }
        }
    }
    let answer = ui
        .api(signed, Method::GET, "/v1/environments", None, None)
        .await?;
    let environments: Vec<ListInfo> = if answer.ok() {
        answer.into()?
    } else {
        Vec::new()
    };
    for list in &environments {
        for name in list.secrets.iter().flatten() {
            used_in
                .entry(name.clone())
                .or_default()
                .push(list.name.clone());
        }
    }
    Ok(Context {
        reserved,
        used_in,
        environments,
    })
}

async fn list(State(ui): Shared, signed: Signed, Query(filter): Query<Filter>) -> Page {
    list_page(&ui, &signed, &filter).await
}

#[allow(clippy::too_many_lines)] // one page
async fn list_page(ui: &Ui, signed: &Signed, filter: &Filter) -> Page {
    let may_all = signed.caller.allows(Action::ListAllPersonalSecrets);
    let all = may_all && filter.all.is_some();
    let path = if all {
        "/v1/secrets?all=true"
    } else {
        "/v1/secrets"
    };
    let answer = ui.api(signed, Method::GET, path, None, None).await?;
    if !answer.ok() {
        return Err(layout::refused(signed, "list secrets", &answer));
    }
    let secrets: Vec<SecretInfo> = answer.into()?;
    let ctx = context(ui, signed).await?;
    let me = signed.name().to_owned();
    let team_names: BTreeSet<&str> = secrets
        .iter()
        .filter(|s| s.scope == Scope::Team)
        .map(|s| s.name.as_str())
        .collect();
    let mine: BTreeSet<&str> = secrets
        .iter()
        .filter(|s| s.scope == Scope::Personal && s.owner.as_deref().is_none_or(|o| o == me))
        .map(|s| s.name.as_str())
        .collect();
    let q = filter.q.trim().to_ascii_lowercase();
    let env_names: Option<BTreeSet<&str>> = (!filter.env.is_empty()).then(|| {
        ctx.environments
            .iter()
            .find(|e| e.name == filter.env)
            .map(|e| e.secrets.iter().flatten().map(String::as_str).collect())
            .unwrap_or_default()
    });
    let shown: Vec<&SecretInfo> = secrets
        .iter()
        .filter(|s| {
            q.is_empty()
                || s.name.to_ascii_lowercase().contains(&q)
                || s.description.to_ascii_lowercase().contains(&q)
        })
        .filter(|s| match filter.scope.as_str() {
            "team" => s.scope == Scope::Team,
            "personal" => s.scope == Scope::Personal,
            _ => true,
        })
        .filter(|s| {
            env_names
                .as_ref()
                .is_none_or(|names| names.contains(s.name.as_str()))
        })
        .collect();
    let write_team = signed.caller.allows(Action::WriteTeamSecret);
    let body = html! {
        div.bar {
            div {
                h1 { "Secrets" }
                p.lead { "Values are write-only: nobody can read them here, only runs receive them. "
                    "Rotate a value by giving a new one." }
            }
            div.actions { a.button href="/ui/secrets/new" { "Add secret" } }
        }
        form.filters method="get" action="/ui/secrets" role="search"
            hx-get="/ui/secrets" hx-trigger="input changed delay:250ms from:#q, change" hx-target="#results"
            hx-select="#results" hx-swap="outerHTML" hx-push-url="true" {
            label { "Name or description" input #q type="search" name="q" value=(filter.q) autocomplete="off"; }
            label { "Scope"
                select name="scope" {
                    option value="" selected[filter.scope.is_empty()] { "All" }
                    option value="team" selected[filter.scope == "team"] { "Team" }
                    option value="personal" selected[filter.scope == "personal"] { "Personal" }
                }
            }
            label { "Environment"
                select name="env" {
                    option value="" selected[filter.env.is_empty()] { "Any" }
                    @for e in &ctx.environments {
                        option value=(e.name) selected[filter.env == e.name] { (e.name) }
                    }
                }
            }
            @if may_all {
                label { "Every member's personal names"
                    input type="checkbox" name="all" value="1" checked[all];
                }
            }
            button.secondary type="submit" { "Filter" }
        }
        div #results {
            @if secrets.is_empty() {
                (empty("No secrets yet.", &html! {
                    "Add one with " a href="/ui/secrets/new" { "Add secret" } ", or from a terminal: "
                    code { "latch secret create --team NAME" } "."
                }))
            } @else if shown.is_empty() {
                (empty("No secret matches these filters.", &html! { a href="/ui/secrets" { "Show every secret" } }))
            } @else {
                p.muted { (count(shown.len(), "secret")) }
                table {
                    thead { tr {
                        th scope="col" { "Name" } th scope="col" { "Scope" } th scope="col" { "Description" }
                        th scope="col" { "Version" } th scope="col" { "Updated" } th scope="col" { "Used in" }
                        th scope="col" { span.skip { "Actions" } }
                    } }
                    tbody {
                        @for s in &shown {
                            @let own = s.scope == Scope::Team || s.owner.as_deref().is_none_or(|o| o == me);
                            @let writable = own && (s.scope == Scope::Personal || write_team);
                            tr {
                                td data-label="Name" {
                                    code { (s.name) }
                                    @if s.scope == Scope::Team && mine.contains(s.name.as_str()) {
                                        " " span.badge.warn title="Your personal secret of this name replaces it in your runs" { "shadowed by yours" }
                                    }
                                    @if s.scope == Scope::Personal && own && team_names.contains(s.name.as_str()) {
                                        " " span.badge.warn title="Replaces the team secret of this name in your runs" { "shadows team" }
                                    }
                                    @if let Some(ids) = ctx.reserved.get(&s.name.to_ascii_uppercase()).filter(|_| s.scope == Scope::Team) {
                                        " " span.badge title="Only runs of these identities receive it" { "reserved for " (ids.join(", ")) }
                                    }
                                    @if s.broker.is_some() {
                                        " " span.badge title="Runs get a placeholder; latch sends the value only to its hosts" { "brokered" }
                                    }
                                }
                                td data-label="Scope" {
                                    span.badge { (s.scope) }
                                    @if let Some(owner) = s.owner.as_deref().filter(|o| *o != me) { " " span.muted { (owner) } }
                                }
                                td data-label="Description" { (s.description) }
                                td data-label="Version" { (s.version) }
                                td data-label="Updated" { (time_at(s.updated_at, signed.now)) " by " (s.updated_by) }
                                td data-label="Used in" {
                                    @match ctx.used_in.get(&s.name) {
                                        Some(envs) => { (envs.join(", ")) }
                                        None => { span.muted { "no environment" } }
                                    }
                                }
                                td {
                                    @if writable {
                                        div.actions {
                                            a href={ "/ui/secrets/" (s.scope) "/" (s.name) } aria-label={ "Edit " (s.name) } { "Edit" }
                                            a href={ "/ui/secrets/" (s.scope) "/" (s.name) "/delete" } aria-label={ "Delete " (s.name) } { "Delete" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(layout::html_page(
        StatusCode::OK,
        &page("Secrets", Some(signed), Section::Secrets, &body),
    ))
}

/// `1 secret`, `2 secrets`.
pub(super) fn count(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

/// What the add or edit form shows again after a refusal: never the value.
#[derive(Default)]
struct Kept {
    scope: Option<Scope>,
    name: String,
    description: String,
    error: Option<String>,
    /// The field the error is about, where it is shown.
    on: On,
}

/// Where a form's error is shown: on the field it concerns, else above the buttons.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum On {
    Name,
    Value,
    Description,
    #[default]
    Form,
}

impl On {
    /// The field an API problem concerns, by its code.
    fn of(code: &str) -> Self {
        match code {
            "invalid_name" | "name_conflict" => Self::Name,
            "invalid_value" | "invalid_sealed_value" | "seal_mismatch" => Self::Value,
            "invalid_description" => Self::Description,
            _ => Self::Form,
        }
    }
}

impl Kept {
    /// The error, if it is about `field`.
    fn error_on(&self, field: On) -> Option<&str> {
        self.error.as_deref().filter(|_| self.on == field)
    }
}

async fn seal_key(ui: &Ui, signed: &Signed) -> Result<SealKey, Response> {
    let answer = ui
        .api(signed, Method::GET, "/v1/seal-key", None, None)
        .await?;
    if !answer.ok() {
        return Err(layout::refused(signed, "write secrets", &answer));
    }
    answer.into()
}

/// The value field and the sealing attributes: the field has no `name`.
fn value_field(required: bool, label: &str, error: Option<&str>) -> Markup {
    html! {
        div.field {
            label for="value" { (label) }
            textarea #value data-value rows="4" spellcheck="false" autocomplete="off" autocapitalize="off"
                data-1p-ignore data-lpignore="true" required[required]
                aria-describedby="value-hint" {}
            span.hint #value-hint {
                "Encrypted in your browser before it is sent: the platform opens it only to store it, "
                "and no page ever shows it again. Up to 64 KiB of text. "
                noscript { strong { "JavaScript is needed to encrypt the value; without it, use "
                    code { "latch secret create" } " in a terminal." } }
            }
            div.error role="alert" data-seal-status hidden {}
            (form_error(error))
        }
    }
}

async fn new_page(State(ui): Shared, signed: Signed) -> Page {
    form_page(&ui, &signed, &Kept::default(), StatusCode::OK).await
}

async fn form_page(ui: &Ui, signed: &Signed, kept: &Kept, status: StatusCode) -> Page {
    let key = seal_key(ui, signed).await?;
    let write_team = signed.caller.allows(Action::WriteTeamSecret);
    let scope = kept.scope.unwrap_or(if write_team {
        Scope::Team
    } else {
        Scope::Personal
    });
    let body = html! {
        div.pane {
            h1 { "Add secret" }
            form.stack method="post" action="/ui/secrets/new" data-seal data-guard
                data-key-id=(key.key_id) data-public-key=(key.public_key) data-team=(key.team)
                data-owner=(key.owner.as_deref().unwrap_or("")) {
                input type="hidden" name="sealed_value" value="";
                fieldset {
                    legend { "Scope" }
                    label {
                        input type="radio" name="scope" value="team" checked[scope == Scope::Team] disabled[!write_team];
                        span { "Team: every run of the team may receive it"
                            @if !write_team { " " span.hint { "(a " (signed.caller.role().as_str()) " may not write team secrets)" } } }
                    }
                    label {
                        input type="radio" name="scope" value="personal" checked[scope == Scope::Personal];
                        span { "Personal: only your own runs receive it" }
                    }
                }
                div.field {
                    label for="name" { "Name" }
                    input #name type="text" name="name" required maxlength="128" value=(kept.name)
                        pattern="[A-Za-z_][A-Za-z0-9_]*" autocomplete="off" spellcheck="false" autocapitalize="off"
                        data-split-paste aria-describedby="name-hint";
                    (form_error(kept.error_on(On::Name)))
                    span.hint #name-hint { "The environment variable runs receive: letters, digits and _, not starting with a digit (UPPER_CASE by convention). Paste " code { "NAME=value" } " to fill both." }
                }
                (value_field(true, "Value", kept.error_on(On::Value)))
                div.field {
                    label for="description" { "Description " span.hint { "(optional)" } }
                    input #description type="text" name="description" maxlength="1024" value=(kept.description);
                    (form_error(kept.error_on(On::Description)))
                }
                (form_error(kept.error_on(On::Form)))
                div.actions {
                    button type="submit" { "Add secret" }
                    a.button.secondary href="/ui/secrets" { "Cancel" }
                }
            }
        }
    };
    Ok(layout::html_page(
        status,
        &page("Add secret", Some(signed), Section::Secrets, &body),
    ))
}

/// The `sealed_value` a form sent, if any: the JSON the page's script wrote.
fn sealed_of(pairs: &[(String, String)]) -> Result<Option<Value>, String> {
    match field(pairs, "sealed_value").map(str::trim) {
        None | Some("") => Ok(None),
        Some(text) => serde_json::from_str::<Value>(text)
            .ok()
            .filter(Value::is_object)
            .map(Some)
            .ok_or_else(|| "the encrypted value is malformed; type it again".to_owned()),
    }
}

/// The message for a refused write, with the value's fate said.
fn refusal(answer: &super::Answer, sealed: bool) -> String {
    let mut message = layout::sentence(answer.detail());
    if sealed {
        message.push_str(" The value was not kept: paste it again.");
    }
    message
}

async fn create(State(ui): Shared, signed: Signed, body: Bytes) -> Page {
    let pairs = form_pairs(body).await;
    let scope = match field(&pairs, "scope") {
        Some("personal") => Scope::Personal,
        _ => Scope::Team,
    };
    let mut kept = Kept {
        scope: Some(scope),
        name: field(&pairs, "name").unwrap_or("").trim().to_owned(),
        description: field(&pairs, "description").unwrap_or("").to_owned(),
        ..Kept::default()
    };
    let sealed = match sealed_of(&pairs) {
        Ok(Some(sealed)) => sealed,
        Ok(None) => {
            kept.error = Some(
                "no value arrived: the page encrypts it in your browser, which needs JavaScript. \
                 Without it, use `latch secret create` in a terminal"
                    .to_owned(),
            );
            kept.on = On::Value;
            return form_page(&ui, &signed, &kept, StatusCode::UNPROCESSABLE_ENTITY).await;
        }
        Err(message) => {
            kept.error = Some(message);
            kept.on = On::Value;
            return form_page(&ui, &signed, &kept, StatusCode::UNPROCESSABLE_ENTITY).await;
        }
    };
    let body = json!({
        "scope": scope,
        "name": kept.name,
        "description": kept.description,
        "sealed_value": sealed,
    });
    let answer = ui
        .api(&signed, Method::POST, "/v1/secrets", Some(&body), None)
        .await?;
    if answer.ok() {
        return Ok(
            Redirect::to(&format!("/ui/secrets?q={}", urlencode(&kept.name))).into_response(),
        );
    }
    kept.error = Some(refusal(&answer, true));
    kept.on = On::of(answer.code());
    let status = if answer.status == StatusCode::FORBIDDEN {
        StatusCode::FORBIDDEN
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    form_page(&ui, &signed, &kept, status).await
}

/// The secret a page's path names, as the API describes it.
async fn one(ui: &Ui, signed: &Signed, scope: &str, name: &str) -> Result<SecretInfo, Response> {
    let path = format!("/v1/secrets/{}/{}", urlencode(scope), urlencode(name));
    let answer = ui.api(signed, Method::GET, &path, None, None).await?;
    match answer.status {
        s if s.is_success() => answer.into(),
        StatusCode::NOT_FOUND | StatusCode::BAD_REQUEST => Err(layout::problem_page(
            Some(signed),
            StatusCode::NOT_FOUND,
            "No such secret",
            &layout::sentence(answer.detail()),
        )),
        _ => Err(layout::refused(signed, "see this secret", &answer)),
    }
}

async fn edit_page(
    State(ui): Shared,
    signed: Signed,
    Path((scope, name)): Path<(String, String)>,
) -> Page {
    let kept = Kept::default();
    edit_form(&ui, &signed, &scope, &name, &kept, StatusCode::OK).await
}

async fn edit_form(
    ui: &Ui,
    signed: &Signed,
    scope: &str,
    name: &str,
    kept: &Kept,
    status: StatusCode,
) -> Page {
    let secret = one(ui, signed, scope, name).await?;
    let key = seal_key(ui, signed).await?;
    let description = if kept.error.is_some() {
        kept.description.clone()
    } else {
        secret.description.clone()
    };
    let body = html! {
        div.pane {
            h1 { "Edit " code { (secret.name) } }
            p.muted {
                span.badge { (secret.scope) } " · version " (secret.version) ", updated "
                (time_at(secret.updated_at, signed.now)) " by " (secret.updated_by)
                " · " (secret.value_length) " bytes"
            }
            form.stack method="post" action={ "/ui/secrets/" (secret.scope) "/" (secret.name) } data-seal data-guard
                data-key-id=(key.key_id) data-public-key=(key.public_key) data-team=(key.team)
                data-owner=(key.owner.as_deref().unwrap_or("")) data-scope=(secret.scope) data-name=(secret.name) {
                input type="hidden" name="sealed_value" value="";
                input type="hidden" name="revision" value=(secret.revision);
                (value_field(false, "New value (leave empty to keep the current one)", kept.error_on(On::Value)))
                div.field {
                    label for="description" { "Description" }
                    input #description type="text" name="description" maxlength="1024" value=(description);
                    (form_error(kept.error_on(On::Description)))
                }
                (form_error(kept.error_on(On::Form)))
                div.actions {
                    button type="submit" { "Save" }
                    a.button.secondary href="/ui/secrets" { "Cancel" }
                }
            }
        }
    };
    Ok(layout::html_page(
        status,
        &page("Edit secret", Some(signed), Section::Secrets, &body),
    ))
}

async fn update(
    State(ui): Shared,
    signed: Signed,
    Path((scope, name)): Path<(String, String)>,
    body: Bytes,
) -> Page {
    let pairs = form_pairs(body).await;
    let mut kept = Kept {
        description: field(&pairs, "description").unwrap_or("").to_owned(),
        ..Kept::default()
    };
    let sealed = match sealed_of(&pairs) {
        Ok(sealed) => sealed,
        Err(message) => {
            kept.error = Some(message);
            return edit_form(
                &ui,
                &signed,
                &scope,
                &name,
                &kept,
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await;
        }
    };
    let mut change = json!({ "description": kept.description });
    let was_sealed = sealed.is_some();
    if let Some(sealed) = sealed {
        change["sealed_value"] = sealed;
    }
    let revision = field(&pairs, "revision").map(|r| format!("\"{}\"", r.trim()));
    let path = format!("/v1/secrets/{}/{}", urlencode(&scope), urlencode(&name));
    let answer = ui
        .api(
            &signed,
            Method::PATCH,
            &path,
            Some(&change),
            revision.as_deref(),
        )
        .await?;
    if answer.ok() {
        return Ok(Redirect::to(&format!("/ui/secrets?q={}", urlencode(&name))).into_response());
    }
    kept.error = Some(if answer.status == StatusCode::PRECONDITION_FAILED {
        let mut m = "Someone changed this secret after you opened it: here it is as it is now. Make your change again.".to_owned();
        if was_sealed {
            m.push_str(" The value was not kept: paste it again.");
        }
        m
    } else {
        kept.on = On::of(answer.code());
        refusal(&answer, was_sealed)
    });
    let status = if answer.status == StatusCode::PRECONDITION_FAILED {
        StatusCode::CONFLICT
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    if answer.status == StatusCode::PRECONDITION_FAILED {
        kept.error = kept.error.take();
        kept.description = String::new();
    }
    edit_form(&ui, &signed, &scope, &name, &kept, status).await
}

async fn delete_page(
    State(ui): Shared,
    signed: Signed,
    Path((scope, name)): Path<(String, String)>,
) -> Page {
    delete_form(&ui, &signed, &scope, &name, None, StatusCode::OK).await
}

async fn delete_form(
    ui: &Ui,
    signed: &Signed,
    scope: &str,
    name: &str,
    error: Option<&str>,
    status: StatusCode,
) -> Page {
    let secret = one(ui, signed, scope, name).await?;
    let ctx = context(ui, signed).await?;
    let envs = ctx.used_in.get(&secret.name).cloned().unwrap_or_default();
    let reserved = if secret.scope == Scope::Team {
        ctx.reserved
            .get(&secret.name.to_ascii_uppercase())
            .cloned()
            .unwrap_or_default()
    } else {
        Vec::new()
    };
    let body = html! {
        div.pane {
            h1 { "Delete " code { (secret.name) } "?" }
            p { "The " (secret.scope) " secret " code { (secret.name) } " and its value are deleted for good. "
                "Runs that ask for it will list it as missing." }
            @if !envs.is_empty() {
                div.notice.warn { p { "Environments that name it: " strong { (envs.join(", ")) } ". They keep the name; their runs will miss it." } }
            }
            @if !reserved.is_empty() {
                div.notice.warn { p { "Identities that reserve it: " strong { (reserved.join(", ")) } "." } }
            }
            (confirm_by_name(
                &format!("/ui/secrets/{}/{}/delete", secret.scope, secret.name),
                &secret.name,
                "Delete secret",
                "/ui/secrets",
                error,
            ))
        }
    };
    Ok(layout::html_page(
        status,
        &page("Delete secret", Some(signed), Section::Secrets, &body),
    ))
}

async fn delete(
    State(ui): Shared,
    signed: Signed,
    Path((scope, name)): Path<(String, String)>,
    body: Bytes,
) -> Page {
    let pairs = form_pairs(body).await;
    if !typed(&pairs, &name) {
        let message = format!("type the name `{name}` exactly to delete it");
        return delete_form(
            &ui,
            &signed,
            &scope,
            &name,
            Some(&message),
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
    }
    let path = format!("/v1/secrets/{}/{}", urlencode(&scope), urlencode(&name));
    let answer = ui.api(&signed, Method::DELETE, &path, None, None).await?;
    if answer.ok() {
        return Ok(Redirect::to("/ui/secrets").into_response());
    }
    if answer.status == StatusCode::FORBIDDEN {
        return Ok(layout::refused(&signed, "delete this secret", &answer));
    }
    Ok(layout::problem_page(
        Some(&signed),
        StatusCode::UNPROCESSABLE_ENTITY,
        "Not deleted",
        &layout::sentence(answer.detail()),
    ))
}
