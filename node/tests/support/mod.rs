//! Shared HTTP test support for the node's API tests: one blocking ureq call on a
//! blocking thread, and an [`Answer`] with assertions for RFC 9457 problems and DID
//! resolution results. Each test file compiles it (`mod support;`), using part of it.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use std::path::Path;
use std::sync::Arc;

use dojang_core::genesis::Genesis;
use dojang_node::clock::ManualClock;
use dojang_node::config::{NodeConfig, StorageKind};
use dojang_node::keyfile::KeyFile;
use dojang_node::node::RunningNode;
use ed25519_dalek::SigningKey;
use serde_json::{Value, json};

/// The config of an in-process node on memory storage in `dir`: writes `genesis` and the
/// key of its validator "v0", listens on a free loopback port.
pub fn node_config(dir: &Path, genesis: &Genesis, validator: &SigningKey, max_request_bytes: usize) -> NodeConfig {
    std::fs::write(dir.join("genesis.json"), genesis.to_json_pretty()).unwrap();
    KeyFile::from_signing_key(validator).write_new(&dir.join("v.key")).unwrap();
    NodeConfig {
        data_dir: dir.join("data"),
        genesis: dir.join("genesis.json"),
        validator_key: dir.join("v.key"),
        validator_id: "v0".into(),
        listen: "127.0.0.1:0".parse().unwrap(),
        max_batch: 1000,
        queue_bytes: 1 << 20,
        max_request_bytes,
        storage: StorageKind::Memory,
        ..NodeConfig::default()
    }
}

/// Starts the node of [`node_config`], reading time from `clock`.
pub async fn start_node(
    dir: &Path,
    genesis: &Genesis,
    validator: &SigningKey,
    max_request_bytes: usize,
    clock: Arc<ManualClock>,
) -> RunningNode {
    dojang_node::node::start(&node_config(dir, genesis, validator, max_request_bytes), clock).await.unwrap()
}

/// The resolution-result media type of the W3C DID Resolution HTTP binding.
pub const RESULT_TYPE: &str = "application/did-resolution";

pub struct Answer {
    pub status: u16,
    pub content_type: String,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("not json ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Asserts an RFC 9457 problem with this status and type slug; returns its detail.
    pub fn problem(&self, status: u16, slug: &str) -> String {
        assert_eq!(self.status, status, "body: {}", self.text());
        self.problem_slug(slug)
    }

    /// Asserts a 4xx RFC 9457 problem with this slug, whatever the 4xx; returns its detail.
    pub fn problem_4xx(&self, slug: &str) -> String {
        assert!((400..500).contains(&self.status), "status {}, body: {}", self.status, self.text());
        self.problem_slug(slug)
    }

    pub fn problem_slug(&self, slug: &str) -> String {
        assert_eq!(self.content_type, "application/problem+json", "body: {}", self.text());
        let p = self.json();
        assert_eq!(p["type"], format!("urn:dojang:problem:{slug}"), "{p}");
        assert_eq!(p["status"], self.status);
        assert!(p["title"].as_str().is_some_and(|t| !t.is_empty()));
        let detail = p["detail"].as_str().unwrap_or_default().to_owned();
        assert!(!detail.is_empty(), "{p}");
        detail
    }

    /// Asserts a successful (or deactivated) resolution result with this status and returns
    /// (didDocument, didDocumentMetadata, didResolutionMetadata).
    pub fn result(&self, status: u16) -> (Value, Value, Value) {
        assert_eq!(self.status, status, "body: {}", self.text());
        assert_eq!(self.content_type, RESULT_TYPE);
        let r = self.json();
        assert_eq!(r.as_object().unwrap().len(), 3, "{r}");
        let rm = r["didResolutionMetadata"].clone();
        assert_eq!(rm["contentType"], "application/did");
        assert!(rm.get("error").is_none(), "{rm}");
        (r["didDocument"].clone(), r["didDocumentMetadata"].clone(), rm)
    }

    /// Asserts a resolution error: the status, the resolution-result content type, a null
    /// document, empty document metadata and an RFC 9457 error of the W3C type `name`.
    pub fn resolution_error(&self, status: u16, name: &str) {
        assert_eq!(self.status, status, "body: {}", self.text());
        assert_eq!(self.content_type, RESULT_TYPE);
        let r = self.json();
        assert_eq!(r["didDocument"], Value::Null);
        assert_eq!(r["didDocumentMetadata"], json!({}));
        let e = &r["didResolutionMetadata"]["error"];
        assert_eq!(e["type"], format!("https://www.w3.org/ns/did#{name}"), "{r}");
        assert_eq!(e["status"], status);
        assert!(e["detail"].as_str().is_some_and(|d| !d.is_empty()), "{r}");
    }
}

/// One HTTP request; any status is an [`Answer`], only a transport error panics.
pub async fn call(method: &str, url: String, content_type: Option<&str>, accept: Option<&str>, body: Vec<u8>) -> Answer {
    let mut headers = Vec::new();
    if let Some(c) = content_type {
        headers.push(("Content-Type".to_owned(), c.to_owned()));
    }
    if let Some(a) = accept {
        headers.push(("Accept".to_owned(), a.to_owned()));
    }
    call_with(method, url, headers, body).await
}

/// One HTTP request with extra headers; any status is an [`Answer`].
pub async fn call_with(method: &str, url: String, headers: Vec<(String, String)>, body: Vec<u8>) -> Answer {
    let method = method.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut req = ureq::request(&method, &url);
        for (k, v) in &headers {
            req = req.set(k, v);
        }
        let resp = match if body.is_empty() && method == "GET" { req.call() } else { req.send_bytes(&body) } {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(e) => panic!("transport error: {e}"),
        };
        let status = resp.status();
        let content_type = resp.header("Content-Type").unwrap_or("").to_owned();
        let mut body = Vec::new();
        std::io::Read::read_to_end(&mut resp.into_reader(), &mut body).unwrap();
        Answer { status, content_type, body }
    })
    .await
    .unwrap()
}
