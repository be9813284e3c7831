//! Click-to-call hand-off (behaviour.md §12): dial requests are POSTed to the contact
//! center's webhook, signed with HMAC-SHA256 over `<timestamp>.<body>` with the shared secret.
//! See docs/webhooks.md for the receiver's side.

use std::time::Duration;

use casebridge_crm::{CrmError, WriteOutcome};
use casebridge_rules::model::CrmOp;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::pipeline::Pipeline;

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

/// Delivers one dial request (`key`: the outbox row's idempotency key).
pub async fn deliver(p: &Pipeline, key: &str, op: CrmOp) -> Result<WriteOutcome, CrmError> {
    let CrmOp::DialWebhook { dial_request_id, agent_id, agent_email, phone, origin_record_id, requested_at } = op
    else {
        return Err(CrmError::Permanent("not a dial request".into()));
    };
    let settings = p.settings().await;
    let c = &settings.click_to_call;
    let (Some(url), Some(secret)) = (c.webhook_url.as_deref(), c.signing_secret.as_deref()) else {
        return Err(CrmError::Transient {
            message: "click_to_call.webhook_url or signing_secret is not set".into(),
            retry_after: None,
        });
    };
    let body = serde_json::json!({
        "type": "dial.requested",
        "dial_request_id": dial_request_id,
        "agent": {"id": agent_id, "email": agent_email},
        "phone": phone,
        "origin_record_id": origin_record_id,
        "requested_at": requested_at,
    });
    let bytes = serde_json::to_vec(&body).map_err(|e| CrmError::Permanent(e.to_string()))?;
    let now = chrono::Utc::now().timestamp();
    let resp = p
        .http
        .post(url)
        .header("content-type", "application/json")
        .header(TIMESTAMP_HEADER, now.to_string())
        .header(SIGNATURE_HEADER, sign(secret, now, &bytes))
        .header(DELIVERY_HEADER, key)
        .body(bytes)
        .send()
        .await
        .map_err(|e| CrmError::Transient { message: format!("dial webhook unreachable: {e}"), retry_after: None })?;
    let status = resp.status();
    if status.is_success() {
        return Ok(WriteOutcome {
            created: None,
            summary: format!("Dial request {dial_request_id} handed to the contact center ({status})"),
        });
    }
    let retry_after = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|s| s.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let message = format!("dial webhook answered {status}");
    if status.is_server_error() || status.as_u16() == 429 || status.as_u16() == 408 {
        Err(CrmError::Transient { message, retry_after })
    } else {
        Err(CrmError::Permanent(message))
    }
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
