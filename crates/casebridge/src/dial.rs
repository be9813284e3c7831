//! Click-to-call hand-off (behaviour.md §12): dial requests are POSTed to the contact
//! center's webhook, signed with HMAC-SHA256 over `<timestamp>.<body>` with the shared secret.
//! See docs/webhooks.md for the receiver's side.

use casebridge_crm::http::{HttpClient, classify};
use casebridge_crm::{CrmError, WriteOutcome};
use casebridge_rules::ops::DialHandoff;
use casebridge_rules::settings::ClickToCallSettings;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The signature header: `sha256=<hex>`.
pub const SIGNATURE_HEADER: &str = "x-casebridge-signature";
/// Unix seconds the signature covers.
pub const TIMESTAMP_HEADER: &str = "x-casebridge-timestamp";
/// The delivery's idempotency key (the same on every retry).
pub const DELIVERY_HEADER: &str = "x-casebridge-delivery";

/// `sha256=` + hex HMAC-SHA256 of `<timestamp>.<body>`.
pub fn sign(secret: &str, timestamp: i64, body: &[u8]) -> String {
    // HMAC takes keys of any length; new_from_slice cannot fail for it.
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(m) => m,
        Err(_) => return String::new(),
    };
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Delivers one dial request (`key`: the outbox row's idempotency key, sent as the delivery
/// id so the receiver can drop repeats).
pub async fn deliver(
    http: &HttpClient,
    settings: &ClickToCallSettings,
    key: &str,
    h: &DialHandoff,
) -> Result<WriteOutcome, CrmError> {
    let (Some(url), Some(secret)) = (settings.webhook_url.as_deref(), settings.signing_secret.as_deref()) else {
        return Err(CrmError::Transient {
            message: "click_to_call.webhook_url or signing_secret is not set".into(),
            retry_after: None,
        });
    };
    let body = serde_json::json!({
        "type": "dial.requested",
        "dial_request_id": h.dial_request_id,
        "agent": {"id": h.agent_id, "email": h.agent_email},
        "phone": h.phone,
        "origin_record_id": h.origin_record_id,
        "requested_at": h.requested_at,
    });
    let bytes = serde_json::to_vec(&body).map_err(|e| CrmError::Permanent(e.to_string()))?;
    let now = chrono::Utc::now().timestamp();
    let req = http
        .client()
        .post(url)
        .header("content-type", "application/json")
        .header(TIMESTAMP_HEADER, now.to_string())
        .header(SIGNATURE_HEADER, sign(secret, now, &bytes))
        .header(DELIVERY_HEADER, key)
        .body(bytes);
    let resp = http.send("dial_webhook", req).await?;
    let status = resp.status();
    if status.is_success() {
        return Ok(WriteOutcome {
            created: None,
            summary: format!("Dial request {} handed to the contact center ({status})", h.dial_request_id),
        });
    }
    let headers = resp.headers().clone();
    Err(match classify(status, &headers, "dial webhook", "") {
        // The webhook is the contact center's, not a CRM object: a 404 is a refusal.
        CrmError::Gone(m) => CrmError::Permanent(m),
        other => other,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_a_known_vector() {
        // HMAC-SHA256("key", "The quick brown fox jumps over the lazy dog") from RFC 4231-style vectors.
        let mut mac = Hmac::<Sha256>::new_from_slice(b"key").expect("any key length");
        mac.update(b"The quick brown fox jumps over the lazy dog");
        assert_eq!(
            hex::encode(mac.finalize().into_bytes()),
            "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"
        );
        assert!(sign("k", 1, b"{}").starts_with("sha256="));
    }
}
