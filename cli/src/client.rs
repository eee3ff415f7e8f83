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

/// Microseconds since the Unix epoch: the default nonce, which increases between calls.
pub fn micros_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_micros() as u64).unwrap_or(0)
}

/// Signs an entry of `kind` by `key` for `genesis` (timestamp now, or `min_time_ms` if later;
/// nonce from [`micros_now`]) and submits it; returns the receipt JSON.
pub fn sign_and_post(
    node: &str,
    genesis: &dojang_core::genesis::Genesis,
    key: &ed25519_dalek::SigningKey,
    kind: dojang_core::entry::Kind,
    payload: Vec<u8>,
    min_time_ms: u64,
) -> anyhow::Result<serde_json::Value> {
    let now = crate::devnet::now_ms().max(min_time_ms);
    let author = dojang_core::did_key::DidKey::from_verifying_key(&key.verifying_key()).key_id();
    let e =
        dojang_core::entry::UnsignedEntry { kind, author, nonce: micros_now(), timestamp_ms: now, payload }.sign(key, &genesis.hash())?;
    post_entry(node, &e.encode()?)
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

/// POSTs JSON with extra headers; returns the JSON answer (problem+json becomes an error
/// quoting its detail, with the problem slug).
pub fn post_json(node: &str, path: &str, body: &serde_json::Value, headers: &[(&str, &str)]) -> anyhow::Result<serde_json::Value> {
    let mut req = agent().post(&url(node, path));
    for (k, v) in headers {
        req = req.set(k, v);
    }
    let resp = req.send_json(body.clone()).map_err(|e| explain(node, e))?;
    resp.into_json().with_context(|| format!("node {node} answered with something that is not json"))
}

/// GETs JSON with extra headers. On an error status returns Err with the status and
/// problem slug first, so callers can react to a specific problem.
pub fn get_json(node: &str, path: &str, headers: &[(&str, &str)]) -> Result<serde_json::Value, (u16, String, anyhow::Error)> {
    let mut req = agent().get(&url(node, path));
    for (k, v) in headers {
        req = req.set(k, v);
    }
    match req.call() {
        Ok(resp) => resp.into_json().map_err(|e| (0, String::new(), anyhow!("node {node} answered with something that is not json: {e}"))),
        Err(ureq::Error::Status(code, resp)) => {
            let body = resp.into_string().unwrap_or_default();
            let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
            let slug = v.get("type").and_then(|t| t.as_str()).unwrap_or_default().trim_start_matches("urn:dojang:problem:").to_owned();
            let detail = v.get("detail").and_then(|d| d.as_str()).map(str::to_owned).unwrap_or(body);
            Err((code, slug, anyhow!("node {node} answered {code}: {detail}")))
        }
        Err(e) => Err((0, String::new(), explain(node, e))),
    }
}

/// Opens a GET whose body is read incrementally (server-sent events).
pub fn get_stream(node: &str, path: &str, headers: &[(&str, &str)]) -> anyhow::Result<Box<dyn std::io::Read + Send + Sync>> {
    let agent = ureq::AgentBuilder::new().timeout_connect(std::time::Duration::from_secs(10)).build();
    let mut req = agent.get(&url(node, path));
    for (k, v) in headers {
        req = req.set(k, v);
    }
    Ok(req.call().map_err(|e| explain(node, e))?.into_reader())
}
/// POSTs JSON, with `Authorization: Bearer <token>` when given; returns the JSON answer.
pub fn post_json_auth(node: &str, path: &str, body: &serde_json::Value, token: Option<&str>) -> anyhow::Result<serde_json::Value> {
    let mut req = agent().post(&url(node, path));
    if let Some(t) = token {
        req = req.set("Authorization", &format!("Bearer {t}"));
    }
    let resp = req.send_json(body).map_err(|e| explain(node, e))?;
    resp.into_json().with_context(|| format!("node {node} answered with something that is not json"))
}
