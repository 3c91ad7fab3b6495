//! Runs, one run, and the audit log (DESIGN §12): filters as plain GET forms (htmx swaps the
//! results in place, with the URL kept), paging by the API's opaque cursor, missing names with
//! their reason and a fix each, masked counts per name.

use axum::extract::{Path, Query, State};
use axum::http::{Method, StatusCode};
use axum::response::Response;
use axum::routing::get;
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::Value;

use super::layout::{self, Section, empty, page, time_at, time_or};
use super::secrets::count;
use super::{Page, Routes, Shared, Signed, urlencode};
use crate::api::{AuditPage, RunInfo, RunPage};
use crate::core::perm::Action;
use crate::core::resolve::MissingReason;

pub(super) fn routes() -> Routes {
    Routes::new()
        .route("/ui/runs", get(runs))
        .route("/ui/runs/{id}", get(run))
        .route("/ui/audit", get(audit))
}

/// The choices of a "since" filter, as durations ago.
const SINCE: [(&str, &str, i64); 4] = [
    ("1h", "the last hour", 3_600_000),
    ("1d", "the last day", 86_400_000),
    ("7d", "the last week", 7 * 86_400_000),
    ("30d", "the last 30 days", 30 * 86_400_000),
];

#[derive(Deserialize, Default)]
struct RunFilter {
    #[serde(default)]
    status: String,
    #[serde(default)]
    environment: String,
    #[serde(default)]
    identity: String,
    #[serde(default)]
    user: String,
    #[serde(default)]
    since: String,
    #[serde(default)]
    cursor: String,
}

/// `name=value` pairs of the non-empty filters, for the API and for links.
fn query(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| format!("{k}={}", urlencode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn since_ms(choice: &str, now: i64) -> String {
    SINCE
        .iter()
        .find(|(k, _, _)| *k == choice)
        .map_or_else(String::new, |(_, _, ms)| (now - ms).to_string())
}

fn since_select(current: &str) -> Markup {
    html! {
        label { "Since"
            select name="since" {
                option value="" selected[current.is_empty()] { "Any time" }
                @for (k, words, _) in SINCE {
                    option value=(k) selected[current == k] { (words) }
                }
            }
        }
    }
}

fn text_filter(label: &str, name: &str, value: &str) -> Markup {
    html! { label { (label) input type="text" name=(name) value=(value) autocomplete="off"; } }
}

async fn runs(State(ui): Shared, signed: Signed, Query(f): Query<RunFilter>) -> Page {
    let since = since_ms(&f.since, signed.now);
    let api = format!(
        "/v1/runs?limit=50&{}",
        query(&[
            ("status", &f.status),
            ("environment", &f.environment),
            ("identity", &f.identity),
            ("user", &f.user),
            ("since", &since),
            ("cursor", &f.cursor),
        ])
    );
    let answer = ui.api(&signed, Method::GET, &api, None, None).await?;
    if !answer.ok() {
        return Ok(filter_problem(&signed, "runs", Section::Runs, &answer));
    }
    let page_of: RunPage = answer.into()?;
    let all = signed.caller.allows(Action::ReadAllRuns);
    let next = page_of.next_cursor.as_ref().map(|c| {
        query(&[
            ("status", &f.status),
            ("environment", &f.environment),
            ("identity", &f.identity),
            ("user", &f.user),
            ("since", &f.since),
            ("cursor", c),
        ])
    });
    let body = html! {
        h1 { "Runs" }
        p.lead { @if all { "Every run of the team, newest first." } @else { "Your own runs, newest first." } }
        form.filters method="get" action="/ui/runs" role="search"
            hx-get="/ui/runs" hx-trigger="change, submit" hx-target="#results" hx-select="#results" hx-swap="outerHTML" hx-push-url="true" {
            label { "Status"
                select name="status" {
                    option value="" selected[f.status.is_empty()] { "Any" }
                    @for s in ["started", "finished", "refused", "exec"] {
                        option value=(s) selected[f.status == s] { (s) }
                    }
                }
            }
            (text_filter("Environment", "environment", &f.environment))
            (text_filter("Identity", "identity", &f.identity))
            @if all { (text_filter("User", "user", &f.user)) }
            (since_select(&f.since))
            button.secondary type="submit" { "Filter" }
        }
        div #results {
            @if page_of.runs.is_empty() {
                (empty(if f.cursor.is_empty() { "No runs yet." } else { "No more runs." }, &html! {
                    "Start one from a terminal: " code { "latch run --env NAME -- your-command" } "."
                }))
            } @else {
                table {
                    thead { tr {
                        th scope="col" { "Started" } th scope="col" { "Who" } th scope="col" { "Trigger" }
                        th scope="col" { "Environment" } th scope="col" { "Identity" } th scope="col" { "Status" }
                        th scope="col" { "Secrets" } th scope="col" { "Exit" } th scope="col" { "Duration" } th scope="col" { "Masked" }
                    } }
                    tbody {
                        @for r in &page_of.runs { (run_row(r, signed.now)) }
                    }
                }
            }
            @if let Some(next) = &next {
                div.pager { a href={ "/ui/runs?" (next) } { "Older runs →" } }
            }
        }
    };
    Ok(layout::html_page(
        StatusCode::OK,
        &page("Runs", Some(&signed), Section::Runs, &body),
    ))
}

/// A refused filter (a bad value) said on the page, or a refusal.
fn filter_problem(
    signed: &Signed,
    what: &str,
    section: Section,
    answer: &super::Answer,
) -> Response {
    if answer.status == StatusCode::FORBIDDEN {
        return layout::refused(signed, &format!("read {what}"), answer);
    }
    let body = html! {
        h1 { "Cannot show " (what) }
        div.notice.danger role="alert" { p { (layout::sentence(answer.detail())) } }
        p { a href={ "/ui/" (what) } { "Clear the filters" } }
    };
    layout::html_page(
        StatusCode::UNPROCESSABLE_ENTITY,
        &page(what, Some(signed), section, &body),
    )
}

fn who(record: &Value) -> String {
    let who = &record["who"];
    let key = who["key_name"]
        .as_str()
        .or_else(|| who["key_id"].as_str())
        .unwrap_or("?");
    match who["user"].as_str() {
        Some(user) => format!("{user} ({key})"),
        None => key.to_owned(),
    }
}

fn delivered(record: &Value) -> Vec<(String, String, u64)> {
    let mut out = Vec::new();
    for scope in ["team", "personal"] {
        if let Some(names) = record["delivered"][scope].as_object() {
            for (name, version) in names {
                out.push((
                    name.clone(),
                    scope.to_owned(),
                    version.as_u64().unwrap_or(0),
                ));
            }
        }
    }
    out.sort();
    out
}

fn exit_of(outcome: Option<&Value>) -> String {
    let Some(outcome) = outcome else {
        return "–".into();
    };
    if let Some(code) = outcome["exit_code"].as_i64() {
        return code.to_string();
    }
    outcome["signal"]
        .as_i64()
        .map_or_else(|| "–".into(), |s| format!("signal {s}"))
}

fn duration(outcome: Option<&Value>) -> String {
    outcome.and_then(|o| o["duration_ms"].as_u64()).map_or_else(
        || "–".into(),
        |ms| {
            if ms < 10_000 {
                format!("{}.{} s", ms / 1000, ms % 1000 / 100)
            } else {
                format!("{} s", ms / 1000)
            }
        },
    )
}

fn masked_total(outcome: Option<&Value>) -> u64 {
    outcome
        .and_then(|o| o["masked"].as_object())
        .map_or(0, |m| m.values().filter_map(Value::as_u64).sum())
}

fn run_row(r: &RunInfo, now: i64) -> Markup {
    let rec = &r.record;
    let missing = rec["missing"].as_array().map_or(0, Vec::len);
    let shadowed = rec["shadowed"].as_array().map_or(0, Vec::len);
    html! {
        tr {
            td data-label="Started" { a href={ "/ui/runs/" (r.id) } { (time_at(r.started_at, now)) } }
            td data-label="Who" { (who(rec)) }
            td data-label="Trigger" { (rec["trigger"].as_str().unwrap_or("–")) }
            td data-label="Environment" { (rec["environment"].as_str().unwrap_or("–")) }
            td data-label="Identity" { (rec["who"]["identity"].as_str().unwrap_or("–")) }
            td data-label="Status" { span.badge.danger[r.status == "refused"] { (r.status) } }
            td data-label="Secrets" {
                (delivered(rec).len()) " delivered"
                @if missing > 0 { ", " span.badge.warn { (missing) " missing" } }
                @if shadowed > 0 { ", " (shadowed) " shadowed" }
            }
            td data-label="Exit" { (exit_of(r.outcome.as_ref())) }
            td data-label="Duration" { (duration(r.outcome.as_ref())) }
            td data-label="Masked" { (masked_total(r.outcome.as_ref())) }
        }
    }
}

#[allow(clippy::too_many_lines)] // one page
async fn run(State(ui): Shared, signed: Signed, Path(id): Path<String>) -> Page {
    let answer = ui
        .api(
            &signed,
            Method::GET,
            &format!("/v1/runs/{}", urlencode(&id)),
            None,
            None,
        )
        .await?;
    if answer.status == StatusCode::NOT_FOUND || answer.status == StatusCode::BAD_REQUEST {
        return Ok(layout::problem_page(
            Some(&signed),
            StatusCode::NOT_FOUND,
            "No such run",
            &layout::sentence(answer.detail()),
        ));
    }
    if !answer.ok() {
        return Ok(layout::refused(&signed, "read this run", &answer));
    }
    let r: RunInfo = answer.into()?;
    let rec = &r.record;
    let masked = r
        .outcome
        .as_ref()
        .and_then(|o| o["masked"].as_object().cloned())
        .unwrap_or_default();
    let listed = |list: &str, name: &str| {
        rec[list]
            .as_array()
            .is_some_and(|a| a.iter().any(|n| n.as_str() == Some(name)))
    };
    let missing = rec["missing"].as_array().cloned().unwrap_or_default();
    let shadowed: Vec<&str> = rec["shadowed"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let body = html! {
        p { a href="/ui/runs" { "← Runs" } }
        h1 { "Run " code { (r.id) } }
        dl.facts {
            dt { "Status" } dd { span.badge { (r.status) } " exit " (exit_of(r.outcome.as_ref())) ", " (duration(r.outcome.as_ref())) }
            dt { "Started" } dd { (time_at(r.started_at, signed.now)) }
            dt { "Ended" } dd { (time_or(r.ended_at, signed.now, "not reported")) }
            dt { "Who" } dd { (who(rec)) }
            dt { "Identity" } dd { (rec["who"]["identity"].as_str().unwrap_or("none")) }
            dt { "Trigger" } dd { (rec["trigger"].as_str().unwrap_or("–")) }
            dt { "Environment" } dd { (rec["environment"].as_str().unwrap_or("none")) }
            dt { "Allowlist" } dd { (match rec["allowlist"].as_str() {
                Some("run") => "the run's own list (--secrets)",
                Some("environment") => "the environment's list",
                Some("none") => "none: every secret in the pool",
                _ => "–",
            }) }
        }
        h2 { "Delivered" }
        @let got = delivered(rec);
        @if got.is_empty() { p.muted { "No secret was delivered." } } @else {
            table {
                thead { tr { th scope="col" { "Name" } th scope="col" { "Scope" } th scope="col" { "Version" } th scope="col" { "Masked" } th scope="col" { "Notes" } } }
                tbody {
                    @for (name, scope, version) in &got {
                        tr {
                            td data-label="Name" { code { (name) } }
                            td data-label="Scope" { span.badge { (scope) } }
                            td data-label="Version" { (version) }
                            td data-label="Masked" { (masked.get(name).and_then(Value::as_u64).unwrap_or(0)) }
                            td data-label="Notes" {
                                @if listed("brokered", name) { span.badge { "brokered" } " " }
                                @if listed("byok", name) { span.badge { "device key (BYOK)" } " " }
                                @if shadowed.contains(&name.as_str()) { span.badge.warn { "personal replaced team" } }
                            }
                        }
                    }
                }
            }
        }
        h2 { "Missing" }
        @if missing.is_empty() { p.muted { "Nothing the run asked for was missing." } } @else {
            table {
                thead { tr { th scope="col" { "Name" } th scope="col" { "Why" } th scope="col" { "How to fix it" } } }
                tbody {
                    @for m in &missing {
                        @let reason = serde_json::from_value::<MissingReason>(m["reason"].clone()).ok();
                        tr {
                            td data-label="Name" { code { (m["name"].as_str().unwrap_or("?")) } }
                            td data-label="Why" { (reason.map_or_else(|| m["reason"].to_string(), |r| r.words().to_owned())) }
                            td data-label="How to fix it" { (reason.map_or("", |r| r.hint())) }
                        }
                    }
                }
            }
        }
        @if !shadowed.is_empty() {
            h2 { "Shadowed" }
            p { (shadowed.join(", ")) ": the user's personal secret replaced the team secret of the same name." }
        }
    };
    Ok(layout::html_page(
        StatusCode::OK,
        &page("Run", Some(&signed), Section::Runs, &body),
    ))
}

#[derive(Deserialize, Default)]
struct AuditFilter {
    #[serde(default)]
    action: String,
    #[serde(default)]
    actor: String,
    #[serde(default)]
    outcome: String,
    #[serde(default)]
    since: String,
    #[serde(default)]
    cursor: String,
}

async fn audit(State(ui): Shared, signed: Signed, Query(f): Query<AuditFilter>) -> Page {
    let since = since_ms(&f.since, signed.now);
    let api = format!(
        "/v1/audit?limit=50&{}",
        query(&[
            ("action", &f.action),
            ("actor", &f.actor),
            ("outcome", &f.outcome),
            ("since", &since),
            ("cursor", &f.cursor),
        ])
    );
    let answer = ui.api(&signed, Method::GET, &api, None, None).await?;
    if !answer.ok() {
        return Ok(filter_problem(&signed, "audit", Section::Audit, &answer));
    }
    let events: AuditPage = answer.into()?;
    let next = events.next_cursor.as_ref().map(|c| {
        query(&[
            ("action", &f.action),
            ("actor", &f.actor),
            ("outcome", &f.outcome),
            ("since", &f.since),
            ("cursor", c),
        ])
    });
    let body = html! {
        h1 { "Audit log" }
        p.lead { "Every change and read of keys, secrets, environments, identities, members and runs, newest first. Never a value or a key." }
        form.filters method="get" action="/ui/audit" role="search"
            hx-get="/ui/audit" hx-trigger="change, submit" hx-target="#results" hx-select="#results" hx-swap="outerHTML" hx-push-url="true" {
            label { "Action (prefix)" input type="text" name="action" value=(f.action) placeholder="secret." autocomplete="off"; }
            (text_filter("Actor", "actor", &f.actor))
            label { "Outcome"
                select name="outcome" {
                    option value="" selected[f.outcome.is_empty()] { "Any" }
                    @for o in ["ok", "denied", "refused", "failed"] {
                        option value=(o) selected[f.outcome == o] { (o) }
                    }
                }
            }
            (since_select(&f.since))
            button.secondary type="submit" { "Filter" }
        }
        div #results {
            @if events.events.is_empty() {
                (empty("No events match.", &html! { a href="/ui/audit" { "Clear the filters" } }))
            } @else {
                p.muted { (count(events.events.len(), "event")) " on this page" }
                table {
                    thead { tr {
                        th scope="col" { "When" } th scope="col" { "Actor" } th scope="col" { "Action" }
                        th scope="col" { "Target" } th scope="col" { "Outcome" } th scope="col" { "Detail" } th scope="col" { "Client" }
                    } }
                    tbody {
                        @for e in &events.events {
                            tr {
                                td data-label="When" { (time_at(e.at, signed.now)) }
                                td data-label="Actor" {
                                    (e.actor.as_deref().unwrap_or("–"))
                                    @if let Some(key) = &e.key_id { " " span.muted { "key " code { (key) } } }
                                    @if let Some(b) = &e.on_behalf_of { " " span.muted { "for " (b) } }
                                }
                                td data-label="Action" { code { (e.action) } }
                                td data-label="Target" { (e.target) }
                                td data-label="Outcome" { span.badge.danger[e.outcome != "ok"] { (e.outcome) } }
                                td data-label="Detail" { code { (detail_text(&e.detail)) } }
                                td data-label="Client" { (e.client_address.as_deref().unwrap_or("–")) }
                            }
                        }
                    }
                }
            }
            @if let Some(next) = &next {
                div.pager { a href={ "/ui/audit?" (next) } { "Older events →" } }
            }
        }
    };
    Ok(layout::html_page(
        StatusCode::OK,
        &page("Audit log", Some(&signed), Section::Audit, &body),
    ))
}

/// An event's detail, compact.
fn detail_text(detail: &Value) -> String {
    match detail {
        Value::Object(m) if m.is_empty() => String::new(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}
