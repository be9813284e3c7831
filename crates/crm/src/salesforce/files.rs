//! Recordings from the hosts the admin allows, uploaded as Salesforce Files on the case: a
//! multipart `ContentVersion` insert (`entity_content` + `VersionData`) whose file part is the
//! recording's download, streamed through (never held whole in memory).

use std::time::Duration;

use futures_util::{StreamExt, TryStreamExt, stream};
use reqwest::header::CONTENT_TYPE;
use serde_json::json;

use super::client::{Sf, faults, sf_error};
use super::writes::Upload;
use crate::http::bearer;
use crate::{CrmError, WriteOutcome};

/// Time allowed to move one recording (the shared client's 10 s is for API calls).
const UPLOAD_TIMEOUT: Duration = Duration::from_secs(600);

fn file_name(u: &Upload) -> String {
    let ext = reqwest::Url::parse(&u.url)
        .ok()
        .and_then(|x| x.path_segments().and_then(|mut s| s.next_back().map(str::to_string)))
        .and_then(|last| last.rsplit_once('.').map(|(_, e)| e.to_string()))
        .filter(|e| !e.is_empty() && e.len() <= 5 && e.chars().all(|c| c.is_ascii_alphanumeric()))
        .unwrap_or_else(|| "mp3".into());
    format!("{}.{ext}", u.name)
}

impl Sf {
    /// Streams a recording from its host into a ContentVersion published on the case.
    pub async fn upload(&self, u: &Upload) -> Result<WriteOutcome, CrmError> {
        let get = self.raw.client().get(&u.url).timeout(UPLOAD_TIMEOUT);
        let download = self.raw.send("salesforce_recording", get).await?;
        let status = download.status();
        if !status.is_success() {
            let message = format!("downloading recording {} answered {status}", u.name);
            return Err(if status.is_server_error() || status.as_u16() == 429 {
                CrmError::Transient { message, retry_after: crate::http::wait_hint(download.headers()) }
            } else {
                CrmError::Permanent(format!("{message}: check that the recording link is still valid"))
            });
        }
        let boundary = format!("casebridge-{:016x}", {
            use std::hash::{Hash, Hasher};
            let mut h = std::collections::hash_map::DefaultHasher::new();
            u.marker.hash(&mut h);
            h.finish()
        });
        let entity = json!({"Title": u.name, "PathOnClient": file_name(u), "FirstPublishLocationId": u.case,
                            "ReasonForChange": u.marker});
        let head = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"entity_content\"\r\nContent-Type: application/json\r\n\r\n\
             {entity}\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"VersionData\"; filename=\"{}\"\r\n\
             Content-Type: application/octet-stream\r\n\r\n",
            file_name(u).replace('"', "")
        );
        let tail = format!("\r\n--{boundary}--\r\n");
        let parts = stream::once(async move { Ok::<Vec<u8>, reqwest::Error>(head.into_bytes()) })
            .chain(download.bytes_stream().map_ok(|b| b.to_vec()))
            .chain(stream::once(async move { Ok(tail.into_bytes()) }));
        let session = self.session().await?;
        let req = self
            .http
            .client()
            .post(format!("{}{}", session.instance, self.data_path("/sobjects/ContentVersion")))
            .header(reqwest::header::AUTHORIZATION, bearer(&session.token))
            .header(CONTENT_TYPE, format!("multipart/form-data; boundary={boundary}"))
            .timeout(UPLOAD_TIMEOUT)
            .body(reqwest::Body::wrap_stream(parts));
        let resp = self.http.send(req).await?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap_or_default();
        if (200..300).contains(&status) {
            let id = serde_json::from_str::<serde_json::Value>(&text)
                .ok()
                .and_then(|v| v["id"].as_str().map(str::to_string))
                .unwrap_or_default();
            if let Ok(mut l) = self.ledger.lock() {
                l.add(&u.case, &u.marker);
            }
            return Ok(WriteOutcome {
                created: None,
                summary: format!("Recording {} uploaded to case {} as file {id}", u.name, u.case),
            });
        }
        // The file part cannot be sent twice: a refused token is renewed for the retry.
        if status == 401
            && faults(&text).iter().any(|f| f.code == "INVALID_SESSION_ID")
            && self.renew(&session.token).await
        {
            return Err(CrmError::Transient {
                message: format!("uploading recording {}: token expired; renewed for the retry", u.name),
                retry_after: None,
            });
        }
        Err(sf_error(status, Some(&headers), &text, &format!("uploading recording {}", u.name), self.cfg.limit_backoff))
    }
}
