//! The OpenAPI 3.1 document, assembled by utoipa from the handlers' `#[utoipa::path]`
//! annotations and the wire types' schemas: it cannot drift from the code it describes.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::handlers as h;
use super::router as r;
use crate::api;

#[derive(OpenApi)]
#[openapi(
    info(title = "latch", description = "Secrets for agent runs: API keys, write-only secrets, environments, identities, run resolution and audit."),
    paths(
        h::healthz, h::readyz, h::metrics, r::openapi, h::whoami,
        h::create_key, h::list_keys, h::revoke_key,
        h::create_secret, h::list_secrets, h::get_secret, h::update_secret, h::delete_secret,
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
        api::AuditPage,
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
                    .build(),
            ),
        );
    }
}

/// The document.
#[must_use]
pub(super) fn document() -> utoipa::openapi::OpenApi {
    Doc::openapi()
}
