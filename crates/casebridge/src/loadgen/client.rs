//! HTTP to the server under load (and to the do-nothing handler), and reading its metrics.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::Value;

/// Talks to one server.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

/// What one POST got.
pub enum Posted {
    /// 202.
    Accepted,
    /// 429 or 503, with the server's Retry-After.
    Refused { status: u16, retry_after: Option<Duration> },
    /// Anything else, or no answer.
    Failed(String),
}

impl Client {
    /// A client for `base` with room for `connections` connections.
    pub fn new(base: &str, token: Option<String>, connections: usize) -> anyhow::Result<Client> {
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(connections + 16)
            .timeout(Duration::from_secs(60))
            .tcp_nodelay(true)
            .build()?;
        Ok(Client { http, base: base.trim_end_matches('/').to_string(), token })
    }

    fn req(&self, m: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let r = self.http.request(m, format!("{}{path}", self.base));
        match &self.token {
            Some(t) => r.bearer_auth(t),
            None => r,
        }
    }

    /// Posts one event.
    pub async fn post_event(&self, e: &Value) -> Posted {
        let body = e.to_string();
        let r = self.req(reqwest::Method::POST, "/v1/events").header("content-type", "application/json").body(body);
        match r.send().await {
            Ok(resp) if resp.status().as_u16() == 202 => {
                let _ = resp.bytes().await;
                Posted::Accepted
            }
            Ok(resp) => {
                let status = resp.status().as_u16();
                let retry_after = resp
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<f64>().ok())
                    .map(Duration::from_secs_f64);
                let text = resp.text().await.unwrap_or_default();
                if status == 429 || status == 503 {
                    Posted::Refused { status, retry_after }
                } else {
                    Posted::Failed(format!("{status}: {}", text.chars().take(300).collect::<String>()))
                }
            }
            Err(e) => Posted::Failed(e.to_string()),
        }
    }

    /// GET returning JSON; an answer other than 2xx is an error naming it.
    pub async fn get(&self, path: &str) -> anyhow::Result<Value> {
        let resp = self.req(reqwest::Method::GET, path).send().await?;
        let status = resp.status();
        let text = resp.text().await?;
        if !status.is_success() {
            anyhow::bail!("GET {path}: {status}: {}", text.chars().take(300).collect::<String>());
        }
        Ok(serde_json::from_str(&text)?)
    }

    /// Several GETs, 16 at a time, answers in the order of `paths`.
    pub async fn get_all(&self, paths: Vec<String>) -> Vec<anyhow::Result<Value>> {
        let mut out: Vec<Option<anyhow::Result<Value>>> = (0..paths.len()).map(|_| None).collect();
        let mut tasks = tokio::task::JoinSet::new();
        for (i, p) in paths.into_iter().enumerate() {
            while tasks.len() >= 16 {
                if let Some(Ok((j, r))) = tasks.join_next().await {
                    out[j] = Some(r);
                }
            }
            let c = self.clone();
            tasks.spawn(async move { (i, c.get(&p).await) });
        }
        while let Some(r) = tasks.join_next().await {
            if let Ok((j, r)) = r {
                out[j] = Some(r);
            }
        }
        out.into_iter().map(|r| r.unwrap_or_else(|| Err(anyhow::anyhow!("request task failed")))).collect()
    }

    /// The Prometheus text of `/metrics`.
    pub async fn metrics(&self) -> anyhow::Result<String> {
        let resp = self.req(reqwest::Method::GET, "/metrics").send().await?;
        Ok(resp.error_for_status()?.text().await?)
    }

    /// PUT of a JSON body; an answer other than 2xx is an error naming it.
    pub async fn put(&self, path: &str, body: &Value) -> anyhow::Result<()> {
        let resp = self.req(reqwest::Method::PUT, path).json(body).send().await?;
        let status = resp.status();
        if !status.is_success() {
            anyhow::bail!("PUT {path}: {status}: {}", resp.text().await.unwrap_or_default());
        }
        Ok(())
    }
}

/// The sum of a metric's samples whose labels contain `label`.
pub fn metric(text: &str, name: &str, label: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with([' ', '{']) && l.contains(label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Cumulative bucket counts of the accepted-to-written histogram.
pub fn latency_buckets(text: &str) -> Vec<(f64, f64)> {
    let name = "casebridge_event_to_crm_write_seconds_bucket{";
    let mut out: Vec<(f64, f64)> = text
        .lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| {
            let le = l.split("le=\"").nth(1)?.split('"').next()?;
            let le = if le == "+Inf" { f64::INFINITY } else { le.parse().ok()? };
            Some((le, l.rsplit(' ').next()?.parse().ok()?))
        })
        .collect();
    out.sort_by(|a, b| a.0.total_cmp(&b.0));
    out
}

/// Percentiles (upper bucket bounds, ms) of the writes done between two scrapes.
pub fn percentiles(before: &[(f64, f64)], after: &[(f64, f64)]) -> Option<(f64, [f64; 3])> {
    let prior: HashMap<u64, f64> = before.iter().map(|(le, n)| (le.to_bits(), *n)).collect();
    let diff: Vec<(f64, f64)> =
        after.iter().map(|(le, n)| (*le, n - prior.get(&le.to_bits()).copied().unwrap_or(0.0))).collect();
    let total = diff.last()?.1;
    if total <= 0.0 {
        return None;
    }
    let at = |q: f64| diff.iter().find(|(_, n)| *n >= q * total).map_or(f64::INFINITY, |(le, _)| le * 1000.0);
    Some((total, [at(0.5), at(0.9), at(0.99)]))
}
