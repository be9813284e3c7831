//! Standard custom fields (api.md "Agents, wrap-up, dispositions, reports"; behaviour.md §11).

use std::collections::BTreeMap;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use casebridge_crm::FieldSpec;
use casebridge_rules::fields::{CATALOG, FieldLevel, catalog_field};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::input::{Checked, Form, FromForm};
use super::state::{AppState, crm_unavailable};
use crate::error::{ApiResult, Problem};

/// Standard custom fields.
pub fn router() -> Router<AppState> {
    Router::new().route("/v1/crm/custom-fields", get(list_fields).post(create_fields))
}

/// A catalog field and whether it is enabled.
#[derive(Debug, Serialize, ToSchema)]
pub struct CatalogFieldOut {
    /// casebridge's key.
    pub key: String,
    /// account or record.
    pub level: FieldLevel,
    /// Label shown in the CRM.
    pub label: String,
    /// text or number.
    #[serde(rename = "type")]
    pub kind: String,
    /// The CRM's field name.
    pub crm_field: String,
    /// Created in the CRM and filled in.
    pub enabled: bool,
    /// Sessions that start at or after this time get values.
    pub enabled_at: Option<DateTime<Utc>>,
}

/// `GET /v1/crm/custom-fields` answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct CatalogOut {
    /// The whole catalog, account level first.
    pub fields: Vec<CatalogFieldOut>,
}

/// `GET /v1/crm/custom-fields`: the catalog and what is enabled.
#[utoipa::path(get, path = "/v1/crm/custom-fields", tag = "custom-fields", responses((status = 200, body = CatalogOut)))]
pub async fn list_fields(State(st): State<AppState>) -> ApiResult<Json<CatalogOut>> {
    let enabled: BTreeMap<String, _> =
        st.store.enabled_fields().await?.into_iter().map(|r| (r.key.clone(), r)).collect();
    let fields = CATALOG
        .iter()
        .map(|c| {
            let e = enabled.get(c.key);
            CatalogFieldOut {
                key: c.key.to_string(),
                level: c.level,
                label: c.label.to_string(),
                kind: c.kind.to_string(),
                crm_field: e.map(|e| e.crm_field.clone()).unwrap_or_else(|| st.pipeline.crm().custom_field_name(c.key)),
                enabled: e.is_some(),
                enabled_at: e.map(|e| e.enabled_at),
            }
        })
        .collect();
    Ok(Json(CatalogOut { fields }))
}

/// Fields to create in the CRM.
#[derive(Debug, Deserialize, ToSchema)]
pub struct CustomFieldsIn {
    /// Catalog keys (or aliases); absent, null or empty: the whole catalog.
    pub fields: Option<Vec<String>>,
}

impl FromForm for CustomFieldsIn {
    const REFUSAL: &'static str = "nothing was created";
    fn from_form(f: &mut Form<'_>) -> Self {
        let known = || CATALOG.iter().map(|c| c.key).collect::<Vec<_>>().join(", ");
        let fields = match f.raw("fields") {
            None => None,
            Some(Value::Array(a)) if a.is_empty() => None,
            Some(Value::Array(a)) => {
                let mut keys = Vec::new();
                for (i, k) in a.iter().enumerate() {
                    match k.as_str().and_then(catalog_field) {
                        Some(c) => keys.push(c.key.to_string()),
                        None => {
                            f.error(&format!("fields[{i}]"), format!("unknown field {k}; the catalog has: {}", known()))
                        }
                    }
                }
                keys.dedup();
                Some(keys)
            }
            Some(_) => {
                f.error("fields", format!("must be a list of catalog keys: {}", known()));
                None
            }
        };
        CustomFieldsIn { fields }
    }
}

/// What happened to one field.
#[derive(Debug, Serialize, ToSchema)]
pub struct FieldOutcomeOut {
    /// casebridge's key.
    pub key: String,
    /// The CRM's field name.
    pub crm_field: String,
    /// created or reused (it existed in the CRM).
    pub outcome: String,
    /// Sessions that start at or after this time get values.
    pub enabled_at: Option<DateTime<Utc>>,
}

/// `POST /v1/crm/custom-fields` answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct FieldOutcomesOut {
    /// In the order asked.
    pub fields: Vec<FieldOutcomeOut>,
}

/// `POST /v1/crm/custom-fields` {fields: [key]}: creates them in the CRM (existing ones are
/// reused); no list creates the whole catalog.
#[utoipa::path(post, path = "/v1/crm/custom-fields", tag = "custom-fields", request_body = CustomFieldsIn,
    responses((status = 200, body = FieldOutcomesOut), (status = 422)))]
pub async fn create_fields(
    State(st): State<AppState>,
    input: Checked<CustomFieldsIn>,
) -> ApiResult<Json<FieldOutcomesOut>> {
    // No list (or an empty one) is the one action: every standard field.
    let keys = input.finish()?.fields.unwrap_or_else(|| CATALOG.iter().map(|c| c.key.to_string()).collect());
    let p = &st.pipeline;
    let mut out = Vec::new();
    for k in keys {
        let Some(c) = catalog_field(&k) else { continue };
        let spec = FieldSpec {
            name: p.crm().custom_field_name(c.key),
            object: if c.level == FieldLevel::Account { "account" } else { "record" },
            label: c.label.to_string(),
            kind: c.kind,
        };
        let created = p.crm().ensure_custom_field(&spec).await.map_err(crm_unavailable)?;
        p.store.enable_field(c.key, &spec.name, Utc::now()).await?;
        out.push((c.key, spec.name, created));
    }
    p.load_fields().await.map_err(Problem::internal)?;
    let enabled: BTreeMap<String, _> =
        p.store.enabled_fields().await?.into_iter().map(|r| (r.key.clone(), r.enabled_at)).collect();
    let fields = out
        .into_iter()
        .map(|(k, crm_field, created)| FieldOutcomeOut {
            key: k.to_string(),
            crm_field,
            outcome: if created { "created" } else { "reused" }.to_string(),
            enabled_at: enabled.get(k).copied(),
        })
        .collect();
    Ok(Json(FieldOutcomesOut { fields }))
}
