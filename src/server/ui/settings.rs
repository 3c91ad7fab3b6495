//! Settings (DESIGN §12): Account (who you are, your session, sign out), Members (add with the
//! first key shown once, change role, remove), API Keys (create with the key shown once in a
//! dialog with copy, hide and an "I have copied it" step; revoke). "Created by" is shown to
//! owners and admins only; the API decides what each role sees and may do.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use maud::{Markup, html};
use serde_json::json;

use super::layout::{self, Section, confirm_by_name, empty, form_error, page, time_at, time_or};
use super::{Page, Routes, Shared, Signed, Ui, field, form_pairs, typed, urlencode};
use crate::api::{AddedMember, CreatedKey, KeyInfo, ListInfo, MemberInfo, RemovedMember, Whoami};
use crate::core::perm::Action;

pub(super) fn routes() -> Routes {
    Routes::new()
        .route(
            "/ui/settings",
            get(|| async { Redirect::to("/ui/settings/account") }),
        )
        .route("/ui/settings/account", get(account))
        .route("/ui/settings/members", get(members).post(add_member))
        .route("/ui/settings/members/{name}/role", post(set_role))
        .route(
            "/ui/settings/members/{name}/remove",
            get(remove_page).post(remove),
        )
        .route("/ui/settings/api-keys", get(keys).post(create_key))
        .route(
            "/ui/settings/api-keys/{id}/revoke",
            get(revoke_page).post(revoke),
        )
}

fn tabs(current: &str) -> Markup {
    let tab = |href: &str, label: &str| {
        html! { li { a href=(href) aria-current=[(href.ends_with(current)).then_some("page")] { (label) } } }
    };
    html! {
        nav.main aria-label="Settings" {
            ul {
                (tab("/ui/settings/account", "Account"))
                (tab("/ui/settings/members", "Members"))
                (tab("/ui/settings/api-keys", "API Keys"))
            }
        }
    }
}

async fn account(State(ui): Shared, signed: Signed) -> Page {
    let answer = ui
        .api(&signed, Method::GET, "/v1/whoami", None, None)
        .await?;
    let me: Whoami = answer.into()?;
    let body = html! {
        h1 { "Settings" }
        (tabs("account"))
        h2 { "Account" }
        dl.facts {
            dt { "Team" } dd { (me.team) }
            dt { "User" } dd { (me.user.as_deref().unwrap_or("–")) }
            dt { "Role" } dd { span.badge { (me.role.as_str()) } }
            dt { "Signed in with" } dd { "personal key " code { (me.key_id) } " (" (me.capability.as_str()) ")" }
            dt { "Own provider keys (BYOK)" } dd { (me.byok.as_str()) " in this team" }
        }
        h2 { "Session" }
        dl.facts {
            dt { "Ends if idle" } dd { (time_at(signed.idle_ends, signed.now)) " (30 minutes after the last page)" }
            dt { "Ends at the latest" } dd { (time_at(signed.absolute_ends, signed.now)) " (12 hours after signing in, or when the key expires)" }
        }
        p.muted { "Revoking the key, or being removed from the team, ends the session at once." }
        div.actions {
            form.inline method="post" action="/ui/logout" { button type="submit" { "Sign out" } }
            form.inline method="post" action="/ui/logout" {
                input type="hidden" name="everywhere" value="1";
                button.secondary type="submit" { "Sign out every session of this key" }
            }
        }
    };
    Ok(layout::html_page(
        StatusCode::OK,
        &page("Account", Some(&signed), Section::Settings, &body),
    ))
}

async fn member_list(ui: &Ui, signed: &Signed) -> Result<Vec<MemberInfo>, Response> {
    let answer = ui
        .api(signed, Method::GET, "/v1/members", None, None)
        .await?;
    if !answer.ok() {
        return Err(layout::refused(signed, "list members", &answer));
    }
    answer.into()
}

async fn members(State(ui): Shared, signed: Signed) -> Page {
    members_page(&ui, &signed, None, None, StatusCode::OK).await
}

async fn members_page(
    ui: &Ui,
    signed: &Signed,
    added: Option<&AddedMember>,
    error: Option<&str>,
    status: StatusCode,
) -> Page {
    let list = member_list(ui, signed).await?;
    let may_add = signed.caller.allows(Action::AddMember {
        role: crate::core::perm::Role::Builder,
    });
    let owner = signed.caller.role() == crate::core::perm::Role::Owner;
    let roles: &[&str] = if owner {
        &["builder", "admin", "owner"]
    } else {
        &["builder", "admin"]
    };
    let body = html! {
        h1 { "Settings" }
        (tabs("members"))
        @if let Some(added) = added {
            (key_dialog(&added.key, &format!("{} was added as {}", added.member.name, added.member.role.as_str()),
                "This is their first personal key: give it to them safely. It expires in 7 days; they should create their own with it."))
        }
        h2 { "Members" }
        table {
            thead { tr { th scope="col" { "Name" } th scope="col" { "Role" } th scope="col" { "Joined" } @if may_add { th scope="col" { span.skip { "Actions" } } } } }
            tbody {
                @for m in &list {
                    tr {
                        td data-label="Name" { (m.name) @if m.name == signed.name() { " " span.muted { "(you)" } } }
                        td data-label="Role" { span.badge { (m.role.as_str()) } }
                        td data-label="Joined" { (time_at(m.created_at, signed.now)) }
                        @if may_add {
                            td {
                                @if owner || m.role != crate::core::perm::Role::Owner {
                                    div.actions {
                                        form.inline method="post" action={ "/ui/settings/members/" (m.name) "/role" } {
                                            label.skip for={ "role-" (m.name) } { "Role of " (m.name) }
                                            select id={ "role-" (m.name) } name="role" {
                                                @for r in roles { option value=(r) selected[*r == m.role.as_str()] { (r) } }
                                            }
                                            " "
                                            button.secondary type="submit" { "Change role" }
                                        }
                                        a href={ "/ui/settings/members/" (m.name) "/remove" } { "Remove…" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        @if may_add {
            h2 { "Add a member" }
            form.stack method="post" action="/ui/settings/members" {
                div.field {
                    label for="member-name" { "Name" }
                    input #member-name type="text" name="name" required maxlength="64" autocomplete="off";
                }
                div.field {
                    label for="member-role" { "Role" }
                    select #member-role name="role" { @for r in roles { option value=(r) { (r) } } }
                }
                (form_error(error))
                div.actions { button type="submit" { "Add member" } }
            }
        } @else {
            p.muted { "Owners and admins add and remove members." }
        }
    };
    Ok(layout::html_page(
        status,
        &page("Members", Some(signed), Section::Settings, &body),
    ))
}

async fn add_member(State(ui): Shared, signed: Signed, body: Bytes) -> Page {
    let pairs = form_pairs(body).await;
    let request = json!({ "name": field(&pairs, "name").unwrap_or("").trim(), "role": field(&pairs, "role").unwrap_or("builder") });
    let answer = ui
        .api(&signed, Method::POST, "/v1/members", Some(&request), None)
        .await?;
    if answer.ok() {
        let added: AddedMember = answer.into()?;
        return members_page(&ui, &signed, Some(&added), None, StatusCode::CREATED).await;
    }
    if answer.status == StatusCode::FORBIDDEN {
        return Ok(layout::refused(&signed, "add this member", &answer));
    }
    members_page(
        &ui,
        &signed,
        None,
        Some(answer.detail()),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await
}

async fn set_role(
    State(ui): Shared,
    signed: Signed,
    Path(name): Path<String>,
    body: Bytes,
) -> Page {
    let pairs = form_pairs(body).await;
    let request = json!({ "role": field(&pairs, "role").unwrap_or("") });
    let path = format!("/v1/members/{}", urlencode(&name));
    let answer = ui
        .api(&signed, Method::PATCH, &path, Some(&request), None)
        .await?;
    if answer.ok() {
        return Ok(Redirect::to("/ui/settings/members").into_response());
    }
    if answer.status == StatusCode::FORBIDDEN {
        return Ok(layout::refused(&signed, "change this role", &answer));
    }
    members_page(
        &ui,
        &signed,
        None,
        Some(answer.detail()),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await
}

async fn remove_page(State(_ui): Shared, signed: Signed, Path(name): Path<String>) -> Page {
    Ok(remove_form(&signed, &name, None))
}

fn remove_form(signed: &Signed, name: &str, error: Option<&str>) -> Response {
    let body = html! {
        div.pane {
            h1 { "Remove " (name) "?" }
            p { "Removing a member is final: every personal key of theirs is revoked for good, their personal secrets are deleted, "
                "and their runs and audit events stay readable. Adding the same name again creates a new user who inherits nothing." }
            (confirm_by_name(
                &format!("/ui/settings/members/{name}/remove"),
                name,
                "Remove member",
                "/ui/settings/members",
                error,
            ))
        }
    };
    let status = if error.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    layout::html_page(
        status,
        &page("Remove member", Some(signed), Section::Settings, &body),
    )
}

async fn remove(State(ui): Shared, signed: Signed, Path(name): Path<String>, body: Bytes) -> Page {
    let pairs = form_pairs(body).await;
    if !typed(&pairs, &name) {
        return Ok(remove_form(
            &signed,
            &name,
            Some(&format!("type the name `{name}` exactly to remove them")),
        ));
    }
    let answer = ui
        .api(
            &signed,
            Method::DELETE,
            &format!("/v1/members/{}", urlencode(&name)),
            None,
            None,
        )
        .await?;
    if answer.status == StatusCode::FORBIDDEN {
        return Ok(layout::refused(&signed, "remove this member", &answer));
    }
    if !answer.ok() {
        return Ok(remove_form(&signed, &name, Some(answer.detail())));
    }
    let removed: RemovedMember = answer.into()?;
    let body = html! {
        h1 { (removed.name) " was removed" }
        p { "Revoked keys: " @if removed.revoked_keys.is_empty() { "none" } @else { @for (i, k) in removed.revoked_keys.iter().enumerate() { @if i > 0 { ", " } (k.name) " (" code { (k.id) } ")" } } "." }
        p { "Deleted personal secrets: " @if removed.deleted_secrets.is_empty() { "none" } @else { (removed.deleted_secrets.join(", ")) } "." }
        p { a href="/ui/settings/members" { "Back to members" } }
    };
    Ok(layout::html_page(
        StatusCode::OK,
        &page("Member removed", Some(&signed), Section::Settings, &body),
    ))
}

/// The raw key, shown once: copy, hide, and an explicit "I have copied it".
fn key_dialog(created: &CreatedKey, title: &str, note: &str) -> Markup {
    html! {
        section.notice role="dialog" aria-modal="false" aria-labelledby="key-title" #key-dialog {
            h2 #key-title { (title) }
            p { strong { "Copy the key now: it is shown once and cannot be read again." } " " (note) }
            p.secret-key.mono #new-key { (created.key) }
            div.actions {
                button type="button" data-copy="new-key" { "Copy" }
                button.secondary type="button" data-toggle-hidden="new-key" aria-pressed="false" { "Hide" }
            }
            p.hint { "In a shell: " code { "export LATCH_API_KEY=…" } " (or keep it in your password manager)." }
            p { a.button #copied href="/ui/settings/api-keys" { "I have copied it" } }
        }
    }
}

async fn key_list(ui: &Ui, signed: &Signed) -> Result<Vec<KeyInfo>, Response> {
    let answer = ui
        .api(signed, Method::GET, "/v1/api-keys", None, None)
        .await?;
    if !answer.ok() {
        return Err(layout::refused(signed, "list API keys", &answer));
    }
    answer.into()
}

async fn keys(State(ui): Shared, signed: Signed) -> Page {
    keys_page(&ui, &signed, None, None, StatusCode::OK).await
}

fn status_of(k: &KeyInfo, now: i64) -> (&'static str, bool) {
    if k.revoked_at.is_some() {
        ("revoked", true)
    } else if k.expires_at.is_some_and(|at| at <= now) {
        ("expired", true)
    } else {
        ("active", false)
    }
}

#[allow(clippy::too_many_lines)] // one page
async fn keys_page(
    ui: &Ui,
    signed: &Signed,
    created: Option<&CreatedKey>,
    error: Option<&str>,
    status: StatusCode,
) -> Page {
    let list = key_list(ui, signed).await?;
    let all = signed.caller.allows(Action::ManageAllKeys);
    let team_keys = signed.caller.allows(Action::CreateTeamKey);
    let identities: Vec<ListInfo> = if team_keys {
        match ui
            .api(signed, Method::GET, "/v1/identities", None, None)
            .await
        {
            Ok(a) if a.ok() => a.into().unwrap_or_default(),
            Ok(_) => Vec::new(),
            Err(page) => return Err(page),
        }
    } else {
        Vec::new()
    };
    let body = html! {
        h1 { "Settings" }
        (tabs("api-keys"))
        @if let Some(created) = created {
            (key_dialog(created, &format!("Key “{}” created", created.info.name), "Use it as LATCH_API_KEY."))
        }
        h2 { "API keys" }
        p.lead { @if all { "Every key of the team." } @else { "Your own keys." } " A key's secret is never shown again after it is created." }
        @if list.is_empty() {
            (empty("No keys.", &html! { "Create one below." }))
        } @else {
            table {
                thead { tr {
                    th scope="col" { "Name" } th scope="col" { "Key" } th scope="col" { "Type" } th scope="col" { "Capability" }
                    th scope="col" { "User" } th scope="col" { "Identity" } th scope="col" { "Created" }
                    @if all { th scope="col" { "Created by" } }
                    th scope="col" { "Last used" } th scope="col" { "Expires" } th scope="col" { "Status" } th scope="col" { span.skip { "Actions" } }
                } }
                tbody {
                    @for k in &list {
                        @let (state, ended) = status_of(k, signed.now);
                        tr {
                            td data-label="Name" { (k.name) @if k.id == signed.caller.key_id.as_str() { " " span.badge { "this session" } } }
                            td data-label="Key" { code { (k.preview) } }
                            td data-label="Type" { (k.kind) }
                            td data-label="Capability" { (k.capability.as_str()) }
                            td data-label="User" { (k.user.as_deref().unwrap_or("–")) }
                            td data-label="Identity" { (k.identity.as_deref().unwrap_or("–")) }
                            td data-label="Created" { (time_at(k.created_at, signed.now)) }
                            @if all { td data-label="Created by" { (k.created_by) } }
                            td data-label="Last used" { (time_or(k.last_used_at, signed.now, "never")) }
                            td data-label="Expires" { (time_or(k.expires_at, signed.now, "never")) }
                            td data-label="Status" { span.badge.danger[ended] { (state) } }
                            td { @if !ended { a href={ "/ui/settings/api-keys/" (k.id) "/revoke" } aria-label={ "Revoke " (k.name) } { "Revoke…" } } }
                        }
                    }
                }
            }
        }
        h2 { "Create a key" }
        form.stack method="post" action="/ui/settings/api-keys" {
            div.field {
                label for="key-name" { "Name " span.hint { "(where it is used, e.g. ci or laptop)" } }
                input #key-name type="text" name="name" required maxlength="100" autocomplete="off";
            }
            fieldset {
                legend { "Type" }
                label { input type="radio" name="kind" value="personal" checked; span { "Personal: acts as you" } }
                label { input type="radio" name="kind" value="team" disabled[!team_keys];
                    span { "Team: for agents, not tied to you" @if !team_keys { " " span.hint { "(owners and admins)" } } } }
            }
            fieldset {
                legend { "Capability" }
                label { input type="radio" name="capability" value="run" checked; span { "Run: start runs only (for agents)" } }
                label { input type="radio" name="capability" value="manage"; span { "Manage: everything your role allows" } }
            }
            @if team_keys {
                div.field {
                    label for="key-identity" { "Identity " span.hint { "(team keys; always run)" } }
                    select #key-identity name="identity" {
                        option value="" { "none" }
                        @for i in &identities { option value=(i.name) { (i.name) } }
                    }
                }
            }
            div.field {
                label for="key-expires" { "Expires" }
                select #key-expires name="expires" {
                    option value="1d" { "in 1 day" }
                    option value="30d" { "in 30 days" }
                    option value="90d" selected { "in 90 days" }
                    option value="1y" { "in 1 year" }
                    option value="never" { "never" }
                }
            }
            (form_error(error))
            div.actions { button type="submit" { "Create key" } }
        }
    };
    Ok(layout::html_page(
        status,
        &page("API keys", Some(signed), Section::Settings, &body),
    ))
}

async fn create_key(State(ui): Shared, signed: Signed, body: Bytes) -> Page {
    let pairs = form_pairs(body).await;
    let mut request = json!({
        "name": field(&pairs, "name").unwrap_or("").trim(),
        "kind": field(&pairs, "kind").unwrap_or("personal"),
        "expires": field(&pairs, "expires").unwrap_or("90d"),
    });
    let identity = field(&pairs, "identity").unwrap_or("");
    if identity.is_empty() {
        request["capability"] = json!(field(&pairs, "capability").unwrap_or("run"));
    } else {
        request["identity"] = json!(identity);
    }
    let answer = ui
        .api(&signed, Method::POST, "/v1/api-keys", Some(&request), None)
        .await?;
    if answer.ok() {
        let created: CreatedKey = answer.into()?;
        return keys_page(&ui, &signed, Some(&created), None, StatusCode::CREATED).await;
    }
    if answer.status == StatusCode::FORBIDDEN {
        return Ok(layout::refused(&signed, "create this key", &answer));
    }
    keys_page(
        &ui,
        &signed,
        None,
        Some(answer.detail()),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await
}

async fn revoke_page(State(ui): Shared, signed: Signed, Path(id): Path<String>) -> Page {
    let list = key_list(&ui, &signed).await?;
    let Some(key) = list.iter().find(|k| k.id == id) else {
        return Ok(layout::problem_page(
            Some(&signed),
            StatusCode::NOT_FOUND,
            "No such key",
            "No key you can see has this id.",
        ));
    };
    let own = key.id == signed.caller.key_id.as_str();
    let body = html! {
        div.pane {
            h1 { "Revoke " (key.name) "?" }
            p { "Key " code { (key.preview) } " stops working at once, for every request and every run that uses it. This cannot be undone." }
            @if own { div.notice.danger role="alert" { p { strong { "This is the key of this session: you will be signed out." } } } }
            form method="post" action={ "/ui/settings/api-keys/" (key.id) "/revoke" } {
                div.actions {
                    button.danger type="submit" { "Revoke key" }
                    a.button.secondary href="/ui/settings/api-keys" { "Cancel" }
                }
            }
        }
    };
    Ok(layout::html_page(
        StatusCode::OK,
        &page("Revoke key", Some(&signed), Section::Settings, &body),
    ))
}

async fn revoke(State(ui): Shared, signed: Signed, Path(id): Path<String>) -> Page {
    let answer = ui
        .api(
            &signed,
            Method::DELETE,
            &format!("/v1/api-keys/{}", urlencode(&id)),
            None,
            None,
        )
        .await?;
    if answer.ok() {
        if id == signed.caller.key_id.as_str() {
            return Ok(Redirect::to("/ui/login?reason=key").into_response());
        }
        return Ok(Redirect::to("/ui/settings/api-keys").into_response());
    }
    if answer.status == StatusCode::FORBIDDEN {
        return Ok(layout::refused(&signed, "revoke this key", &answer));
    }
    Ok(layout::problem_page(
        Some(&signed),
        StatusCode::UNPROCESSABLE_ENTITY,
        "Not revoked",
        &layout::sentence(answer.detail()),
    ))
}
