//! Amazon SNS message signatures: the canonical string of a message's fields, signed by the
//! SNS signing certificate (`SignatureVersion` 1: SHA1withRSA, 2: SHA256withRSA). The
//! certificate is fetched over HTTPS from `sns.<region>.amazonaws.com` only, and cached; an
//! operator may trust a local certificate instead (`serve --sns-cert-file`: LocalStack, tests,
//! networks without a way out), and then nothing is fetched.

use std::collections::HashMap;
use std::sync::Arc;

use base64::Engine;
use chrono::{DateTime, Utc};
use serde_json::Value;
use tokio::sync::Mutex;
use x509_cert::Certificate;
use x509_cert::der::DecodePem;

/// How old a message may be: SNS retries for hours at most; an older one is a replay.
pub const MAX_AGE_HOURS: i64 = 24;

/// Checks SNS signatures.
pub struct SnsVerifier {
    http: reqwest::Client,
    /// Certificate URL → RSA public key (DER), fetched once.
    certs: Mutex<HashMap<String, Arc<Vec<u8>>>>,
    /// A local certificate's key, used instead of fetching.
    trusted: Option<Arc<Vec<u8>>>,
}

/// The RSA public key (DER) of a PEM certificate.
pub fn public_key(pem: &[u8]) -> Result<Vec<u8>, String> {
    let cert = Certificate::from_pem(pem).map_err(|e| format!("not a PEM certificate: {e}"))?;
    Ok(cert.tbs_certificate.subject_public_key_info.subject_public_key.raw_bytes().to_vec())
}

/// Whether a URL is where SNS keeps its certificates and confirmation links:
/// `https://sns.<region>.amazonaws.com[.cn]/…`.
pub fn is_sns_url(url: &str) -> bool {
    let Ok(u) = reqwest::Url::parse(url) else { return false };
    let host = u.host_str().unwrap_or_default();
    let region = host
        .strip_prefix("sns.")
        .and_then(|h| h.strip_suffix(".amazonaws.com").or_else(|| h.strip_suffix(".amazonaws.com.cn")));
    u.scheme() == "https"
        && region.is_some_and(|r| {
            !r.is_empty() && r.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        })
}

fn is_loopback_url(url: &str) -> bool {
    reqwest::Url::parse(url).ok().and_then(|u| u.host_str().map(str::to_string)).is_some_and(|h| {
        h == "localhost" || h.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback()) || h == "[::1]"
    })
}

/// The string SNS signs: `name\nvalue\n` for the type's fields, in this order, skipping
/// absent optional ones.
pub fn canonical(msg: &Value) -> Result<String, String> {
    let kind = msg.get("Type").and_then(Value::as_str).ok_or("Type is required")?;
    let fields: &[&str] = match kind {
        "Notification" => &["Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"],
        "SubscriptionConfirmation" | "UnsubscribeConfirmation" => {
            &["Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"]
        }
        other => return Err(format!("Type {other:?} is not an SNS message type")),
    };
    let mut out = String::new();
    for f in fields {
        match msg.get(*f).and_then(Value::as_str) {
            Some(v) => {
                out.push_str(f);
                out.push('\n');
                out.push_str(v);
                out.push('\n');
            }
            None if *f == "Subject" => {}
            None => return Err(format!("{f} is required")),
        }
    }
    Ok(out)
}

impl SnsVerifier {
    /// A verifier; `trusted` is a PEM certificate to use instead of fetching.
    pub fn new(trusted: Option<&[u8]>) -> anyhow::Result<SnsVerifier> {
        let trusted = match trusted {
            Some(pem) => Some(Arc::new(public_key(pem).map_err(|e| anyhow::anyhow!("--sns-cert-file: {e}"))?)),
            None => None,
        };
        let http = reqwest::Client::builder().timeout(std::time::Duration::from_secs(5)).build()?;
        Ok(SnsVerifier { http, certs: Mutex::new(HashMap::new()), trusted })
    }

    async fn key_for(&self, url: &str) -> Result<Arc<Vec<u8>>, String> {
        if let Some(k) = &self.trusted {
            return Ok(k.clone());
        }
        if !is_sns_url(url) || !url.ends_with(".pem") {
            return Err(format!("SigningCertURL {url:?} is not an https://sns.<region>.amazonaws.com/….pem address"));
        }
        if let Some(k) = self.certs.lock().await.get(url) {
            return Ok(k.clone());
        }
        let resp = self.http.get(url).send().await.map_err(|e| format!("cannot fetch the signing certificate: {e}"))?;
        if !resp.status().is_success() {
            return Err(format!("fetching the signing certificate answered {}", resp.status()));
        }
        let pem = resp.bytes().await.map_err(|e| format!("cannot read the signing certificate: {e}"))?;
        let key = Arc::new(public_key(&pem)?);
        self.certs.lock().await.insert(url.to_string(), key.clone());
        Ok(key)
    }

    /// Checks a message's signature and age; the reason when it fails.
    pub async fn verify(&self, msg: &Value, now: DateTime<Utc>) -> Result<(), String> {
        let text = canonical(msg)?;
        let version = msg.get("SignatureVersion").and_then(Value::as_str).unwrap_or("1");
        let alg: &dyn ring::signature::VerificationAlgorithm = match version {
            "1" => &ring::signature::RSA_PKCS1_1024_8192_SHA1_FOR_LEGACY_USE_ONLY,
            "2" => &ring::signature::RSA_PKCS1_2048_8192_SHA256,
            other => return Err(format!("SignatureVersion {other:?} is not 1 or 2")),
        };
        let sig = msg.get("Signature").and_then(Value::as_str).ok_or("Signature is required")?;
        let sig = base64::engine::general_purpose::STANDARD.decode(sig).map_err(|_| "Signature is not base64")?;
        let url = msg.get("SigningCertURL").and_then(Value::as_str).ok_or("SigningCertURL is required")?;
        let key = self.key_for(url).await?;
        ring::signature::UnparsedPublicKey::new(alg, key.as_slice())
            .verify(text.as_bytes(), &sig)
            .map_err(|_| "the signature does not match the message".to_string())?;
        let sent = msg
            .get("Timestamp")
            .and_then(Value::as_str)
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .ok_or("Timestamp is not an ISO 8601 time")?;
        if now.signed_duration_since(sent.with_timezone(&Utc)).num_hours() >= MAX_AGE_HOURS {
            return Err(format!("the message was sent at {sent}, over {MAX_AGE_HOURS} hours ago: a replay"));
        }
        Ok(())
    }

    /// Confirms a subscription by visiting its `SubscribeURL` (an SNS address; a loopback one
    /// only while a local certificate is trusted).
    pub async fn confirm(&self, url: &str) -> Result<(), String> {
        let allowed = is_sns_url(url) || (self.trusted.is_some() && is_loopback_url(url));
        if !allowed {
            return Err(format!("SubscribeURL {url:?} is not an https://sns.<region>.amazonaws.com address"));
        }
        let resp = self.http.get(url).send().await.map_err(|e| format!("cannot confirm the subscription: {e}"))?;
        if resp.status().is_success() {
            Ok(())
        } else {
            Err(format!("confirming the subscription answered {}", resp.status()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_sns_hosts_over_https() {
        assert!(is_sns_url("https://sns.us-west-2.amazonaws.com/SimpleNotificationService-1.pem"));
        assert!(is_sns_url("https://sns.cn-north-1.amazonaws.com.cn/x.pem"));
        for bad in [
            "http://sns.us-west-2.amazonaws.com/x.pem",
            "https://sns.us-west-2.amazonaws.com.evil.example/x.pem",
            "https://evil.example/sns.us-west-2.amazonaws.com/x.pem",
            "https://sns..amazonaws.com/x.pem",
            "https://s3.amazonaws.com/x.pem",
        ] {
            assert!(!is_sns_url(bad), "{bad}");
        }
    }

    #[test]
    fn canonical_strings_skip_a_missing_subject() {
        let msg = serde_json::json!({"Type": "Notification", "Message": "m", "MessageId": "i",
            "Timestamp": "t", "TopicArn": "a"});
        assert_eq!(
            canonical(&msg).ok().as_deref(),
            Some("Message\nm\nMessageId\ni\nTimestamp\nt\nTopicArn\na\nType\nNotification\n")
        );
        assert!(canonical(&serde_json::json!({"Type": "Notification"})).is_err());
    }
}
