//! The OpenAPI document, generated from the handlers' annotations, and its route.

use axum::routing::get;
use axum::{Json, Router};
use utoipa::OpenApi;

use super::state::AppState;
use super::{
    activities, agents, connection, crm, custom_fields, dispositions, events, ingest, nodes, ops, reports, sessions,
    settings, wrapup,
};

/// `GET /openapi.json`.
pub fn router() -> Router<AppState> {
    Router::new().route("/openapi.json", get(openapi))
}

/// `GET /openapi.json`: this document.
#[utoipa::path(get, path = "/openapi.json", tag = "operations",
    responses((status = 200, description = "The OpenAPI 3.1 document of this API", body = Object)))]
pub async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(document())
}

/// Schemas of request and response bodies are collected from the paths; the ones listed here
/// are also reachable by name for clients that generate code from components.
#[derive(OpenApi)]
#[openapi(
    info(title = "casebridge", description = "Contact-center sessions in, correct CRM records out."),
    paths(
        ops::healthz, ops::readyz, ops::metrics, openapi, ops::list_outbox, ops::retry_outbox, ops::retry_all,
        nodes::list_nodes,
        connection::test_connection,
        events::post_events,
        sessions::get_session, sessions::list_sessions,
        settings::get_settings, settings::put_settings, settings::patch_settings,
        settings::settings_history, settings::restore_settings,
        crm::create_account, crm::list_accounts, crm::get_account,
        crm::create_record, crm::list_records, crm::get_record, crm::patch_record, crm::get_attachment,
        crm::builtin_statuses,
        wrapup::wrapup,
        dispositions::list_dispositions, dispositions::create_disposition, dispositions::patch_disposition,
        activities::list_activities,
        reports::report_dispositions, reports::report_abandoned,
        custom_fields::list_fields, custom_fields::create_fields,
        agents::put_agent, agents::get_agent, agents::put_context, agents::delete_context, agents::put_status,
        agents::crm_status, agents::dial, agents::get_dial,
        ingest::amazon_connect::contact_events, ingest::amazon_connect::sns_messages,
        ingest::amazon_connect::contact_records, ingest::twilio::taskrouter, ingest::twilio::event_streams,
        ingest::genesys::conversation_events, ingest::cti::cti_event,
    ),
    components(schemas(
        casebridge_rules::event::Event, casebridge_rules::event::EventKind,
        casebridge_rules::settings::Settings, casebridge_rules::settings::Warning,
        casebridge_rules::event::FieldError, crate::error::Problem,
        settings::SettingsOut, settings::SettingsHistoryOut,
    )),
    modifiers(&Security),
)]
struct ApiDoc;

struct Security;

impl utoipa::Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        openapi.security =
            Some(vec![utoipa::openapi::security::SecurityRequirement::new("bearer", Vec::<String>::new())]);
    }
}

/// The whole API as OpenAPI 3.1.
pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}
