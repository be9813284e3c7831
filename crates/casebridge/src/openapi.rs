//! The OpenAPI document, generated from the handlers' annotations.

use utoipa::OpenApi;

use crate::api::{agents, crm, events, ops, sessions, settings, wrapup};

#[derive(OpenApi)]
#[openapi(
    info(title = "casebridge", description = "Contact-center sessions in, correct CRM records out."),
    paths(
        events::post_events,
        sessions::get_session, sessions::list_sessions,
        settings::get_settings, settings::put_settings,
        crm::create_account, crm::list_accounts, crm::get_account,
        crm::create_record, crm::list_records, crm::get_record, crm::patch_record, crm::get_attachment,
        ops::healthz, ops::readyz, ops::metrics, ops::list_outbox, ops::retry_outbox,
        agents::put_agent, agents::get_agent, agents::put_context, agents::delete_context, agents::put_status,
        agents::crm_status, agents::dial, agents::get_dial, crm::builtin_statuses,
        wrapup::wrapup, wrapup::list_activities, wrapup::list_dispositions, wrapup::create_disposition,
        wrapup::patch_disposition, wrapup::report_dispositions, wrapup::report_abandoned,
        wrapup::list_fields, wrapup::create_fields,
    ),
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
