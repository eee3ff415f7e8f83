//! A small blocking HTTP client for the node API. Problem+json answers become one-line
//! errors that quote the node's `detail`.

use anyhow::{Context as _, anyhow};
use base64::Engine as _;

fn url(node: &str, path: &str) -> String {
    format!("{}{}", node.trim_end_matches('/'), path)
}

fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new().timeout(std::time::Duration::from_secs(30)).build()
}

fn explain(node: &str, e: ureq::Error) -> anyhow::Error {
    match e {
        ureq::Error::Status(code, resp) => {
            let body = resp.into_string().unwrap_or_default();
            let detail = serde_json::from_str::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v.get("detail").and_then(|d| d.as_str()).map(str::to_owned))
                .unwrap_or(body);
            anyhow!("node {node} answered {code}: {detail}")
        }
        ureq::Error::Transport(t) => anyhow!("cannot reach node {node}: {t}"),
    }
}

pub fn get_text(node: &str, path: &str) -> anyhow::Result<String> {
    let resp = agent().get(&url(node, path)).call().map_err(|e| explain(node, e))?;
    resp.into_string().with_context(|| format!("cannot read the answer of {node}"))
}

/// GET that returns the body whatever the status (DID resolution answers errors as
/// resolution results); only transport failures are errors.
pub fn get_text_any_status(node: &str, path: &str) -> anyhow::Result<String> {
    match agent().get(&url(node, path)).call() {
        Ok(resp) | Err(ureq::Error::Status(_, resp)) => resp.into_string().with_context(|| format!("cannot read the answer of {node}")),
        Err(e) => Err(explain(node, e)),
    }
}

/// Submits one encoded entry; returns the receipt JSON.
pub fn post_entry(node: &str, bytes: &[u8]) -> anyhow::Result<serde_json::Value> {
    let resp = agent()
        .post(&url(node, "/v1/entries"))
        .set("Content-Type", "application/octet-stream")
        .send_bytes(bytes)
        .map_err(|e| explain(node, e))?;
    resp.into_json().with_context(|| format!("node {node} sent a receipt that is not json"))
}

/// Submits a batch; returns the per-entry results.
#[allow(dead_code)]
pub fn post_batch(node: &str, entries: &[Vec<u8>]) -> anyhow::Result<serde_json::Value> {
    let body =
        serde_json::json!({ "entries": entries.iter().map(|e| base64::engine::general_purpose::STANDARD.encode(e)).collect::<Vec<_>>() });
    let resp = agent().post(&url(node, "/v1/entries")).send_json(body).map_err(|e| explain(node, e))?;
    resp.into_json().with_context(|| format!("node {node} sent results that are not json"))
}
