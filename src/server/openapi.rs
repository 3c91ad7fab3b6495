//! The OpenAPI 3.1 document, assembled by utoipa from the handlers' `#[utoipa::path]`
//! annotations and the wire types' schemas, then completed here with what the annotations do not
//! carry (DESIGN §9): every problem an operation can answer (status, `code` values,
//! `application/problem+json`), which operations need no key, and the constraints the server
//! enforces on every field and parameter, so that a client generated from the document sends
//! only what the server accepts. A test holds the document to the router and to the codes the
//! server's source can answer.

use serde_json::{Value, json};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::handlers as h;
use super::router as r;
use crate::api;

mod constraints;

#[derive(OpenApi)]
#[openapi(
    info(title = "latch", description = "Secrets for agent runs: API keys, write-only secrets, environments, identities, run resolution and audit. Errors are `application/problem+json` with a stable `code`; each operation lists the codes it can answer."),
    paths(
        h::healthz, h::readyz, h::metrics, r::openapi, h::whoami, h::update_team,
        h::create_key, h::list_keys, h::revoke_key,
        h::seal_key, h::create_secret, h::list_secrets, h::get_secret, h::update_secret, h::delete_secret,
        h::put_environment, h::get_environment, h::list_environments, h::delete_environment,
        h::put_identity, h::get_identity, h::list_identities, h::delete_identity,
        h::add_member, h::list_members, h::set_role, h::remove_member,
        h::resolve, h::finish_run, h::list_runs, h::show_run, h::audit,
    ),
    components(schemas(
        api::Problem, api::Whoami, api::CreateKey, api::KeyInfo, api::CreatedKey, api::CreateSecret,
        api::UpdateSecret, api::SecretInfo, api::PutList, api::ListInfo, api::AddMember, api::SetRole,
        api::MemberInfo, api::AddedMember, api::ResolveRun, api::ResolvedSecret, api::Resolved,
        api::FinishRun, api::RunInfo, api::AuditInfo, api::KeyRefInfo, api::ExistingSecret,
        api::RemovedMember, api::DeletedList, api::WouldDeliver, api::DryRunInfo, api::RunPage,
        api::AuditPage, api::UpdateTeam, api::TeamInfo, api::ByokAnswer, api::ByokApplied,
        api::SealKey, api::Sealed,
    )),
    modifiers(&Bearer),
    security(("api_key" = []))
)]
struct Doc;

/// Adds the API key scheme: `Authorization: Bearer <key>` (or `x-api-key: <key>`).
struct Bearer;

impl Modify for Bearer {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("latch API key")
                    .description(Some(
                        "`Authorization: Bearer <key>` (the scheme in any case) or \
                         `x-api-key: <key>`; never in a query string",
                    ))
                    .build(),
            ),
        );
    }
}

/// The document.
#[must_use]
pub(super) fn document() -> Value {
    let mut doc = serde_json::to_value(Doc::openapi()).unwrap_or_else(|_| json!({}));
    for (_, method, op) in operations(&mut doc) {
        let id = op["operationId"].as_str().unwrap_or_default().to_owned();
        complete(&id, &method, op);
    }
    constraints::apply(&mut doc);
    doc
}

/// Every operation of `doc`: path, method, operation.
fn operations(doc: &mut Value) -> Vec<(String, String, &mut Value)> {
    let mut out = Vec::new();
    if let Some(paths) = doc["paths"].as_object_mut() {
        for (path, item) in paths.iter_mut() {
            if let Some(item) = item.as_object_mut() {
                for (method, op) in item.iter_mut() {
                    if op.get("responses").is_some() {
                        out.push((path.clone(), method.clone(), op));
                    }
                }
            }
        }
    }
    out
}

/// Operations anyone may call: no key (DESIGN §8).
const PUBLIC: [&str; 4] = ["healthz", "readyz", "metrics", "openapi"];

/// What a `run` key may call (DESIGN §3); every other authenticated operation needs `manage`.
const RUN_KEY_OPERATIONS: [&str; 4] = ["whoami", "resolve", "finish_run", "show_run"];

/// One problem response: a status and the codes it carries.
type Problems = &'static [(u16, &'static [&'static str])];

/// What any operation with a key can answer.
const AUTHENTICATED: Problems = &[
    (401, &["unauthorized"]),
    (429, &["rate_limited"]),
    (500, &["internal", "integrity_error"]),
    (503, &["database_unavailable"]),
];

/// What an operation that needs the `manage` capability, a role or a user can answer.
const MANAGE: Problems = &[(403, &["key_cannot_manage", "forbidden", "needs_user"])];

/// What an operation with a JSON body can answer about the body itself.
const BODY: Problems = &[
    (400, &["invalid_body", "invalid_json"]),
    (413, &["body_too_large"]),
    (415, &["unsupported_media_type"]),
];

/// What an operation with query parameters can answer about them.
const QUERY: Problems = &[(400, &["invalid_query"])];

/// The problems of each operation beyond the kinds above.
#[allow(clippy::too_many_lines)] // one table
fn own_problems(id: &str) -> Problems {
    match id {
        "readyz" => &[(503, &["database_unavailable"])],
        "create_key" => &[
            (
                400,
                &[
                    "invalid_name",
                    "invalid_expiry",
                    "invalid_capability",
                    "invalid_identity",
                ],
            ),
            (404, &["unknown_identity"]),
        ],
        "revoke_key" => &[(400, &["invalid_key_id"]), (404, &["unknown_key"])],
        "create_secret" => &[
            (
                400,
                &[
                    "invalid_name",
                    "invalid_scope",
                    "invalid_value",
                    "invalid_sealed_value",
                    "seal_mismatch",
                    "invalid_description",
                    "invalid_broker",
                ],
            ),
            (409, &["name_conflict", "conflict"]),
        ],
        "get_secret" | "delete_secret" => &[
            (400, &["invalid_scope", "invalid_name"]),
            (404, &["unknown_secret"]),
        ],
        "update_secret" => &[
            (
                400,
                &[
                    "invalid_scope",
                    "invalid_name",
                    "invalid_value",
                    "invalid_sealed_value",
                    "seal_mismatch",
                    "invalid_description",
                    "invalid_broker",
                    "empty_update",
                    "invalid_if_match",
                ],
            ),
            (404, &["unknown_secret"]),
            (409, &["conflict"]),
            (412, &["precondition_failed"]),
        ],
        "put_environment" | "put_identity" => &[
            (
                400,
                &[
                    "invalid_name",
                    "too_many_names",
                    "invalid_description",
                    "invalid_if_match",
                ],
            ),
            (409, &["would_release"]),
            (412, &["precondition_failed"]),
        ],
        "get_environment" | "get_identity" => &[(400, &["invalid_name"]), (404, &["unknown_name"])],
        "delete_environment" | "delete_identity" => &[
            (400, &["invalid_name", "invalid_if_match"]),
            (404, &["unknown_name"]),
            (409, &["would_release", "identity_in_use"]),
            (412, &["precondition_failed"]),
        ],
        "add_member" => &[
            (400, &["invalid_name", "invalid_expiry"]),
            (409, &["member_exists"]),
        ],
        "set_role" | "remove_member" => &[
            (400, &["invalid_name"]),
            (404, &["unknown_member"]),
            (409, &["conflict"]),
        ],
        "resolve" => &[
            (
                400,
                &[
                    "trigger_requires_user",
                    "invalid_name",
                    "invalid_broker",
                    "invalid_byok",
                ],
            ),
            (403, &["byok_refused"]),
            (404, &["unknown_environment"]),
            (422, &["required_missing"]),
        ],
        "finish_run" => &[
            (400, &["invalid_run_id"]),
            (404, &["unknown_run"]),
            (409, &["run_not_started"]),
        ],
        "show_run" => &[(400, &["invalid_run_id"]), (404, &["unknown_run"])],
        "list_runs" | "audit" => &[(400, &["invalid_cursor"])],
        _ => &[],
    }
}

/// Completes operation `op` (`id`, HTTP `method`): its security and every problem it answers.
fn complete(id: &str, method: &str, op: &mut Value) {
    let mut problems: std::collections::BTreeMap<u16, std::collections::BTreeSet<&str>> =
        std::collections::BTreeMap::new();
    let mut add = |list: Problems| {
        for (status, codes) in list {
            problems.entry(*status).or_default().extend(codes.iter());
        }
    };
    if PUBLIC.contains(&id) {
        // An empty list: no security requirement (the document's default asks for a key).
        op["security"] = json!([]);
    } else {
        add(AUTHENTICATED);
        if !RUN_KEY_OPERATIONS.contains(&id) {
            add(MANAGE);
        }
    }
    if op.get("requestBody").is_some() && matches!(method, "post" | "put" | "patch") {
        add(BODY);
    }
    let has_query = op["parameters"]
        .as_array()
        .is_some_and(|ps| ps.iter().any(|p| p["in"] == "query"));
    if has_query {
        add(QUERY);
    }
    add(own_problems(id));
    let Some(responses) = op["responses"].as_object_mut() else {
        return;
    };
    // OpenAPI requires a description on every response.
    for (status, response) in responses.iter_mut() {
        if response
            .get("description")
            .is_none_or(|d| d.as_str() == Some(""))
        {
            let reason = status
                .parse::<u16>()
                .ok()
                .and_then(|s| axum::http::StatusCode::from_u16(s).ok())
                .and_then(|s| s.canonical_reason())
                .unwrap_or("answer");
            response["description"] = json!(reason);
        }
    }
    if id == "metrics" {
        // prometheus-client's exposition format.
        responses.insert(
            "200".into(),
            json!({
                "description": "Prometheus metrics (OpenMetrics text)",
                "content": {"application/openmetrics-text": {"schema": {"type": "string"}}},
            }),
        );
    }
    for (status, codes) in problems {
        let listed: Vec<String> = codes.iter().map(|c| format!("`{c}`")).collect();
        responses.insert(
            status.to_string(),
            json!({
                "description": format!("problem codes: {}", listed.join(", ")),
                "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}},
            }),
        );
    }
}

/// The problem codes the document names (for tests).
#[cfg(test)]
fn documented_codes(doc: &Value) -> std::collections::BTreeSet<String> {
    let mut codes = std::collections::BTreeSet::new();
    let mut doc = doc.clone();
    for (_, _, op) in operations(&mut doc) {
        if let Some(responses) = op["responses"].as_object() {
            for response in responses.values() {
                if let Some(text) = response["description"].as_str()
                    && let Some(list) = text.strip_prefix("problem codes: ")
                {
                    codes.extend(list.split(", ").map(|c| c.trim_matches('`').to_owned()));
                }
            }
        }
    }
    codes
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The router's routes, read from its source: `(path, methods)`.
    fn routes() -> Vec<(String, Vec<String>)> {
        let source = include_str!("router.rs");
        let mut out = Vec::new();
        for part in source.split(".route(").skip(1) {
            let Some(path) = part.split('"').nth(1) else {
                continue;
            };
            let until = part.find(".route(").unwrap_or(part.len());
            let body = &part[..until.min(part.find(".fallback").unwrap_or(part.len()))];
            let methods = ["get", "post", "put", "patch", "delete"]
                .iter()
                .filter(|m| body.contains(&format!("{m}(")) || body.contains(&format!(".{m}(")))
                .map(ToString::to_string)
                .collect();
            out.push((path.to_owned(), methods));
        }
        out
    }

    #[test]
    fn every_route_is_documented_and_every_documented_operation_is_routed() {
        let doc = document();
        let paths = doc["paths"].as_object().expect("paths");
        let routes = routes();
        assert!(routes.len() >= 19, "{routes:?}");
        for (path, methods) in &routes {
            for m in methods {
                assert!(
                    paths.get(path).and_then(|p| p.get(m)).is_some(),
                    "{m} {path} is routed but not documented"
                );
            }
        }
        for (path, item) in paths {
            for m in item.as_object().expect("item").keys() {
                assert!(
                    routes.iter().any(|(p, ms)| p == path && ms.contains(m)),
                    "{m} {path} is documented but not routed"
                );
            }
        }
    }

    /// Every code the server's source passes to a problem constructor.
    fn codes_in_source() -> std::collections::BTreeSet<String> {
        let sources = [
            include_str!("error.rs"),
            include_str!("auth.rs"),
            include_str!("handlers/mod.rs"),
            include_str!("handlers/keys.rs"),
            include_str!("handlers/secrets.rs"),
            include_str!("handlers/lists.rs"),
            include_str!("handlers/members.rs"),
            include_str!("handlers/runs.rs"),
            include_str!("handlers/audit.rs"),
            include_str!("handlers/health.rs"),
        ];
        let mut codes = std::collections::BTreeSet::new();
        // Codes chosen by a match (`Denied` → `key_cannot_manage` / `forbidden`).
        for part in include_str!("error.rs").split("=> \"").skip(1) {
            if let Some(code) = part.split('"').next() {
                codes.insert(code.to_owned());
            }
        }
        for source in sources {
            for marker in ["bad_request(", "not_found(", "StatusCode::"] {
                for part in source.split(marker).skip(1) {
                    // The code is the first string literal of the call, if it comes before the
                    // call's first `)`.
                    let head = &part[..part.find(')').unwrap_or(part.len())];
                    let head = head.split_once(',').map_or(head, |(status, rest)| {
                        if marker == "StatusCode::" {
                            rest
                        } else {
                            status
                        }
                    });
                    if let Some(code) = head.split('"').nth(1)
                        && !code.is_empty()
                        && code.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
                    {
                        codes.insert(code.to_owned());
                    }
                }
            }
        }
        codes
    }

    #[test]
    fn every_problem_code_of_the_source_is_documented() {
        let documented = documented_codes(&document());
        let found = codes_in_source();
        for must in [
            "unauthorized",
            "key_cannot_manage",
            "name_conflict",
            "required_missing",
        ] {
            assert!(found.contains(must), "the scan misses {must}: {found:?}");
        }
        // Not an operation's: unmatched routes.
        let missing: Vec<&String> = found
            .iter()
            .filter(|c| !documented.contains(*c) && *c != "no_such_route")
            .collect();
        assert!(
            missing.is_empty(),
            "undocumented problem codes: {missing:?}"
        );
    }

    #[test]
    fn public_operations_need_no_key_and_the_others_answer_401() {
        let doc = document();
        for (path, method) in [
            ("/healthz", "get"),
            ("/readyz", "get"),
            ("/metrics", "get"),
            ("/v1/openapi.json", "get"),
        ] {
            assert_eq!(doc["paths"][path][method]["security"], json!([]), "{path}");
        }
        let op = &doc["paths"]["/v1/secrets"]["post"];
        assert!(op.get("security").is_none(), "the default: a key");
        for status in ["400", "401", "403", "409", "413", "415", "429", "503"] {
            assert!(
                op["responses"][status]["content"]["application/problem+json"].is_object(),
                "{status}: {op}"
            );
        }
    }
}
