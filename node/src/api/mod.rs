//! The HTTP API (`specs/api.md`, `specs/openapi.yaml`), the only module that imports
//! `axum`. Handlers parse and map errors; all logic lives in the ledger and write path.
//!
//! Every error is RFC 9457 `application/problem+json` with a stable `type` URN; bad
//! input is always a 4xx, never a 5xx; bodies are size-limited before they are read.

mod access;
mod blocks;
pub mod conn;

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use dojang_core::admission::AdmissionError;
use dojang_core::entry::{Entry, leaf_hash};
use dojang_core::hash::Hash;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::ledger::{Ledger, LedgerError};
use crate::metrics::Metrics;
use crate::sequencer::SequencerError;
use crate::writepath::WritePath;

pub mod tls;
mod vc;

/// Largest number of entries in one JSON batch submission.
pub const MAX_BATCH_ENTRIES: usize = 10_000;

#[derive(Debug, Clone)]
pub struct ApiState {
    pub ledger: Arc<Ledger>,
    pub write: Arc<WritePath>,
    pub metrics: Arc<Metrics>,
    pub genesis_json: Arc<String>,
    pub did_answers: Arc<DidAnswerCache>,
    pub clock: Arc<dyn crate::clock::Clock>,
    /// Challenges already answered (the audit API's only authentication state).
    pub auth: Arc<AuthState>,
    pub credentials: Arc<crate::credentials::CredentialService>,
}

pub use access::AuthState;

/// Rendered did:dojang answers, reused while the DID has no new operation and the
/// answer is younger than [`DidAnswerCache::MAX_AGE`]. A reused answer proves against a
/// slightly older checkpoint — still quorum-signed, still covering every operation of the
/// DID — which is what lets resolution skip replay and proof generation on the hot path.
#[derive(Debug, Default)]
pub struct DidAnswerCache {
    answers: std::sync::RwLock<std::collections::HashMap<(String, String, String), CachedAnswer>>,
}

#[derive(Debug, Clone)]
struct CachedAnswer {
    versions: usize,
    at: std::time::Instant,
    status: u16,
    content_type: String,
    body: Bytes,
}

impl DidAnswerCache {
    pub const MAX_AGE: std::time::Duration = std::time::Duration::from_secs(2);
    const MAX_ENTRIES: usize = 100_000;

    fn get(&self, key: &(String, String, String), versions: usize) -> Option<CachedAnswer> {
        let map = self.answers.read().unwrap_or_else(|p| p.into_inner());
        map.get(key).filter(|a| a.versions == versions && a.at.elapsed() < Self::MAX_AGE).cloned()
    }

    fn put(&self, key: (String, String, String), answer: CachedAnswer) {
        let mut map = self.answers.write().unwrap_or_else(|p| p.into_inner());
        if map.len() >= Self::MAX_ENTRIES {
            map.clear();
        }
        map.insert(key, answer);
    }
}

/// Builds the router. `max_body` bounds every request body in bytes.
pub fn router(state: ApiState, max_body: usize) -> Router {
    let metrics = state.metrics.clone();
    Router::new()
        .route("/v1/entries", post(submit))
        .route("/v1/entries/{index}", get(get_entry))
        .route("/v1/checkpoint", get(get_checkpoint))
        .route("/v1/proofs/inclusion", get(inclusion))
        .route("/v1/proofs/consistency", get(consistency))
        .route("/v1/nonce", get(nonce))
        .route("/v1/genesis", get(genesis))
        .route("/1.0/identifiers/{*did}", get(resolve_identifier))
        .route("/v1/documents/verify", post(verify_document))
        .route("/v1/documents/expiring", get(expiring_documents))
        .route("/v1/documents/{commitment}", get(get_document))
        .route("/v1/registry", get(get_registry))
        .route("/credentials/issue", post(vc::issue))
        .route("/credentials/verify", post(vc::verify))
        .route("/credentials/status", post(vc::update_status))
        .route("/presentations/challenge", post(vc::challenge))
        .route("/presentations/verify", post(vc::verify_presentation))
        .route("/v1/status-lists", post(vc::create_list))
        .route("/v1/status-lists/{id}", get(vc::get_list))
        .route("/v1/status-lists/{id}/{index}", get(vc::get_bit))
        .route("/healthz", get(healthz))
        .route("/metrics", get(render_metrics))
        .merge(access::routes())
        .merge(blocks::routes())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(max_body))
        .layer(middleware::from_fn_with_state(metrics, count_status))
        // One structured span per request (method, path, status, latency) at debug level.
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(state)
}

/// Serves the API on `listener` until `shutdown` resolves, then drains in-flight requests.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: ApiState,
    max_body: usize,
    limits: conn::ConnLimits,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let closing = state.auth.closing.clone();
    conn::serve_connections(listener, router(state, max_body), None, limits, closing, shutdown).await
}

async fn count_status(State(metrics): State<Arc<Metrics>>, req: Request, next: Next) -> Response {
    let resp = next.run(req).await;
    metrics.http_status(resp.status().as_u16());
    resp
}

/// An RFC 9457 problem.
#[derive(Debug)]
pub struct Problem {
    pub status: StatusCode,
    pub slug: &'static str,
    pub title: &'static str,
    pub detail: String,
    pub retry_after: Option<u64>,
}

impl Problem {
    fn new(status: StatusCode, slug: &'static str, title: &'static str, detail: impl Into<String>) -> Self {
        Problem { status, slug, title, detail: detail.into(), retry_after: None }
    }

    fn body(&self) -> serde_json::Value {
        json!({
            "type": format!("urn:dojang:problem:{}", self.slug),
            "title": self.title,
            "status": self.status.as_u16(),
            "detail": self.detail,
        })
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let mut resp = (self.status, self.body().to_string()).into_response();
        resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        if let Some(s) = self.retry_after
            && let Ok(v) = HeaderValue::from_str(&s.to_string())
        {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
        resp
    }
}

fn admission_problem(e: &AdmissionError) -> Problem {
    let (status, title) = match e {
        AdmissionError::Entry(dojang_core::entry::EntryError::TooLarge { .. }) => (StatusCode::PAYLOAD_TOO_LARGE, "entry too large"),
        AdmissionError::Entry(dojang_core::entry::EntryError::BadSignature(_)) => (StatusCode::BAD_REQUEST, "bad signature"),
        AdmissionError::Entry(_) => (StatusCode::BAD_REQUEST, "malformed entry"),
        AdmissionError::ClockSkew { .. } => (StatusCode::BAD_REQUEST, "timestamp out of range"),
        AdmissionError::Unauthorized { .. } => (StatusCode::FORBIDDEN, "not authorised"),
        AdmissionError::Replay { .. } => (StatusCode::CONFLICT, "replayed nonce"),
        AdmissionError::DidOperation(_) => (StatusCode::BAD_REQUEST, "invalid did operation"),
        AdmissionError::Access(_) => (StatusCode::BAD_REQUEST, "malformed access event"),
        AdmissionError::DuplicateAccessTag { .. } => (StatusCode::CONFLICT, "slot already used"),
        AdmissionError::UnknownAuditor { .. } => (StatusCode::BAD_REQUEST, "unknown auditor"),
        AdmissionError::Registry(_) | AdmissionError::Document(_) | AdmissionError::StatusList(_) => {
            let slug = e.slug();
            let forbidden = [
                "not-authorized",
                "no-quorum",
                "self-approval",
                "unknown-validator",
                "bad-signature",
                "unknown-issuer-key",
                "status-unauthorized",
                "invalid-approval",
                "list-unauthorized",
            ];
            if forbidden.iter().any(|s| slug.contains(s)) {
                (StatusCode::FORBIDDEN, "not authorised")
            } else if ["stale-version", "already", "exists", "out-of-order"].iter().any(|s| slug.contains(s)) {
                (StatusCode::CONFLICT, "conflicts with ledger state")
            } else {
                (StatusCode::BAD_REQUEST, "refused by ledger rules")
            }
        }
    };
    Problem::new(status, e.slug(), title, e.to_string())
}

fn sequencer_problem(e: &SequencerError) -> Problem {
    match e {
        SequencerError::Full { retry_after_secs, .. } => Problem {
            retry_after: Some(*retry_after_secs),
            ..Problem::new(StatusCode::SERVICE_UNAVAILABLE, "queue-full", "submission queue full", e.to_string())
        },
        SequencerError::Stopped => Problem::new(StatusCode::SERVICE_UNAVAILABLE, "stopping", "node is stopping", e.to_string()),
        SequencerError::Commit(_) => Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "commit-failed", "commit failed", e.to_string()),
        SequencerError::ReadReplica { .. } => read_replica_problem(e.to_string()),
    }
}

/// A write sent to a read replica (`specs/api.md` §1.2, §3): 421 Misdirected Request, because
/// the request is fine but this server is the wrong one to take it; `detail` names the
/// validators to send it to. Not 503: retrying here would never succeed.
fn read_replica_problem(detail: String) -> Problem {
    Problem::new(StatusCode::MISDIRECTED_REQUEST, "read-replica", "this node is a read replica", detail)
}

fn ledger_problem(e: &LedgerError) -> Problem {
    match e {
        LedgerError::NoSuchEntry { .. } | LedgerError::NoSuchLeaf(_) | LedgerError::NoCheckpointAt(_) => {
            Problem::new(StatusCode::NOT_FOUND, "not-found", "not found", e.to_string())
        }
        LedgerError::SizeTooLarge { .. } | LedgerError::BadRange { .. } => {
            Problem::new(StatusCode::BAD_REQUEST, "bad-range", "bad range", e.to_string())
        }
        _ => {
            tracing::error!(error = %e, "ledger read failed");
            Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error", e.to_string())
        }
    }
}

fn body_problem(e: BytesRejection) -> Problem {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        Problem::new(StatusCode::PAYLOAD_TOO_LARGE, "request-too-large", "request too large", e.body_text())
    } else {
        Problem::new(StatusCode::BAD_REQUEST, "bad-request", "unreadable request body", e.body_text())
    }
}

fn query_problem(e: QueryRejection) -> Problem {
    Problem::new(StatusCode::BAD_REQUEST, "bad-query", "bad query parameters", e.body_text())
}

fn path_problem(e: PathRejection) -> Problem {
    Problem::new(StatusCode::BAD_REQUEST, "bad-path", "bad path parameter", e.body_text())
}

async fn not_found() -> Problem {
    Problem::new(StatusCode::NOT_FOUND, "not-found", "not found", "no such endpoint")
}

async fn method_not_allowed() -> Problem {
    Problem::new(StatusCode::METHOD_NOT_ALLOWED, "method-not-allowed", "method not allowed", "this endpoint does not take that method")
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchRequest {
    entries: Vec<String>,
}

#[derive(Debug, Serialize)]
struct ReceiptView {
    index: u64,
    leaf_hash: Hash,
    tree_size: u64,
}

fn content_type(headers: &HeaderMap) -> &str {
    headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").split(';').next().unwrap_or("").trim()
}

/// `POST /v1/entries`: one raw entry (`application/octet-stream`, 201 + receipt), or a
/// JSON batch `{"entries": [base64, …]}` (200 + per-entry results in order).
async fn submit(State(st): State<ApiState>, headers: HeaderMap, body: Result<Bytes, BytesRejection>) -> Result<Response, Problem> {
    let body = body.map_err(body_problem)?;
    let ct = content_type(&headers).to_ascii_lowercase();
    match ct.as_str() {
        "application/octet-stream" => {
            let outcome = st.write.submit(vec![body.to_vec()]).await.map_err(|e| sequencer_problem(&e))?;
            match outcome.into_iter().next() {
                Some(Ok(r)) => {
                    Ok((StatusCode::CREATED, Json(ReceiptView { index: r.index, leaf_hash: r.leaf_hash, tree_size: r.tree_size }))
                        .into_response())
                }
                Some(Err(e)) => Err(admission_problem(&e)),
                None => Err(Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error", "no outcome for the entry")),
            }
        }
        "application/json" => {
            let req: BatchRequest = serde_json::from_slice(&body).map_err(|e| {
                Problem::new(StatusCode::BAD_REQUEST, "bad-json", "malformed json", format!("expected {{\"entries\": [base64, …]}}: {e}"))
            })?;
            submit_batch(&st, &req, |_, _| Ok(())).await
        }
        other => Err(Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "unsupported media type",
            format!("content type {other:?} is not application/octet-stream or application/json"),
        )),
    }
}

/// Decodes a JSON batch (bounded), lets `check` refuse an entry before sequencing, submits
/// it and answers one result per entry, in order.
async fn submit_batch(st: &ApiState, req: &BatchRequest, check: impl Fn(usize, &[u8]) -> Result<(), Problem>) -> Result<Response, Problem> {
    if req.entries.len() > MAX_BATCH_ENTRIES {
        return Err(Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "batch-too-large",
            "batch too large",
            format!("batch has {} entries, over the limit of {MAX_BATCH_ENTRIES}", req.entries.len()),
        ));
    }
    let mut decoded = Vec::with_capacity(req.entries.len());
    for (i, e) in req.entries.iter().enumerate() {
        let bytes = base64::engine::general_purpose::STANDARD.decode(e).map_err(|_| {
            Problem::new(StatusCode::BAD_REQUEST, "bad-base64", "entry is not base64", format!("entries[{i}] is not standard base64"))
        })?;
        check(i, &bytes)?;
        decoded.push(bytes);
    }
    let outcomes = st.write.submit(decoded).await.map_err(|e| sequencer_problem(&e))?;
    let results: Vec<serde_json::Value> = outcomes
        .iter()
        .map(|o| match o {
            Ok(r) => json!({"index": r.index, "leaf_hash": r.leaf_hash, "tree_size": r.tree_size}),
            Err(e) => json!({"error": admission_problem(e).body()}),
        })
        .collect();
    Ok(Json(json!({ "results": results })).into_response())
}

fn wants_json(headers: &HeaderMap) -> bool {
    headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|a| a.contains("application/json"))
}

/// The decoded JSON view of an entry (`specs/api.md`).
pub fn entry_json(index: u64, bytes: &[u8]) -> serde_json::Value {
    match Entry::decode(bytes) {
        Ok(e) => json!({
            "index": index,
            "leaf_hash": leaf_hash(bytes),
            "kind": e.kind.name(),
            "author": e.author,
            "nonce": e.nonce,
            "timestamp_ms": e.timestamp_ms,
            "payload": base64::engine::general_purpose::STANDARD.encode(&e.payload),
            "signature": hex::encode(e.signature),
        }),
        Err(err) => json!({ "index": index, "error": err.to_string() }),
    }
}

/// `GET /v1/entries/{index}`: the exact leaf bytes, or a JSON view on request.
async fn get_entry(State(st): State<ApiState>, headers: HeaderMap, index: Result<Path<u64>, PathRejection>) -> Result<Response, Problem> {
    let Path(index) = index.map_err(path_problem)?;
    let bytes = st.ledger.entry(index).map_err(|e| ledger_problem(&e))?;
    if wants_json(&headers) {
        Ok(Json(entry_json(index, &bytes)).into_response())
    } else {
        Ok(([(header::CONTENT_TYPE, "application/octet-stream")], bytes).into_response())
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SizeQuery {
    size: Option<u64>,
}

/// `GET /v1/checkpoint[?size=N]`: the latest (or an earlier published) signed checkpoint.
async fn get_checkpoint(State(st): State<ApiState>, q: Result<Query<SizeQuery>, QueryRejection>) -> Result<Response, Problem> {
    let Query(q) = q.map_err(query_problem)?;
    let text = st.ledger.checkpoint_text(q.size).map_err(|e| ledger_problem(&e))?;
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct InclusionQuery {
    index: Option<u64>,
    leaf_hash: Option<String>,
    size: Option<u64>,
}

/// `GET /v1/proofs/inclusion?index=|leaf_hash=[&size=]`: an offline-verifiable bundle.
async fn inclusion(State(st): State<ApiState>, q: Result<Query<InclusionQuery>, QueryRejection>) -> Result<Response, Problem> {
    let Query(q) = q.map_err(query_problem)?;
    let index = match (q.index, q.leaf_hash) {
        (Some(i), None) => i,
        (None, Some(h)) => {
            let h = Hash::from_hex(&h).map_err(|e| Problem::new(StatusCode::BAD_REQUEST, "bad-query", "bad leaf hash", e.to_string()))?;
            st.ledger.index_of(&h).map_err(|e| ledger_problem(&e))?
        }
        _ => {
            return Err(Problem::new(
                StatusCode::BAD_REQUEST,
                "bad-query",
                "bad query parameters",
                "give exactly one of index or leaf_hash",
            ));
        }
    };
    let b = st.ledger.inclusion_bundle(index, q.size).map_err(|e| ledger_problem(&e))?;
    Ok(Json(b).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConsistencyQuery {
    from: u64,
    to: Option<u64>,
}

/// `GET /v1/proofs/consistency?from=&to=`: proof that checkpoint `to` extends `from`.
async fn consistency(State(st): State<ApiState>, q: Result<Query<ConsistencyQuery>, QueryRejection>) -> Result<Response, Problem> {
    let Query(q) = q.map_err(query_problem)?;
    let b = st.ledger.consistency_bundle(q.from, q.to).map_err(|e| ledger_problem(&e))?;
    Ok(Json(b).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NonceQuery {
    author: String,
}

/// `GET /v1/nonce?author=`: the author's last committed nonce, so clients can pick the next.
async fn nonce(State(st): State<ApiState>, q: Result<Query<NonceQuery>, QueryRejection>) -> Result<Response, Problem> {
    let Query(q) = q.map_err(query_problem)?;
    let last = st.ledger.last_nonce(&q.author).map_err(|e| ledger_problem(&e))?;
    Ok(Json(json!({ "author": q.author, "last_nonce": last })).into_response())
}

/// `GET /1.0/identifiers/{did}`: DID resolution over the W3C DID Resolution HTTP(S)
/// binding and the DIF Universal Resolver driver binding (`specs/api.md` §4). did:key
/// resolves locally; did:dojang from the ledger, with a proof bundle in
/// `didResolutionMetadata.dojangProof`. Errors are resolution results, not problem+json,
/// because that is what resolver clients parse.
async fn resolve_identifier(State(st): State<ApiState>, headers: HeaderMap, uri: Uri) -> Response {
    use dojang_core::resolution;
    // The raw, still percent-encoded segment: the binding decodes it itself.
    let raw = uri.path().strip_prefix("/1.0/identifiers/").unwrap_or_default();
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let (status, content_type, body) = match resolution::parse_did(raw) {
        Ok((did, method)) if method == "dojang" => {
            let versions = st.ledger.did_state(&did).ok().flatten().map(|s| s.versions().len());
            let key = (did.clone(), uri.query().unwrap_or_default().to_owned(), accept.unwrap_or_default().to_owned());
            match versions.and_then(|v| st.did_answers.get(&key, v)) {
                Some(a) => (a.status, a.content_type, a.body),
                None => {
                    let (status, content_type, body, proven) = resolve_dojang(&st, &did, uri.query(), accept);
                    let body = Bytes::from(body);
                    // Keyed by the versions the answer proves (not the count read above,
                    // which may be newer than the checkpoint the answer used).
                    if let (Some(v), 200 | 410) = (proven, status) {
                        let answer = CachedAnswer {
                            versions: v,
                            at: std::time::Instant::now(),
                            status,
                            content_type: content_type.clone(),
                            body: body.clone(),
                        };
                        st.did_answers.put(key, answer);
                    }
                    (status, content_type, body)
                }
            }
        }
        _ => {
            let (status, content_type, body) = resolution::respond_did_key(raw, uri.query(), accept);
            (status, content_type, Bytes::from(body))
        }
    };
    let mut resp = (StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR), body).into_response();
    if let Ok(v) = HeaderValue::from_str(&content_type) {
        resp.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    resp
}

/// Resolves and renders; the last value is how many operations the answer's proof carries.
fn resolve_dojang(st: &ApiState, did: &str, query: Option<&str>, accept: Option<&str>) -> (u16, String, Vec<u8>, Option<usize>) {
    use dojang_core::did_dojang::{VersionSelector, parse_rfc3339};
    use dojang_core::resolution::{self, ResolutionError, ResultFormat};
    let negotiated = resolution::negotiate_with_format(accept);
    let format = negotiated.as_ref().map_or(ResultFormat::Current, |n| n.format);
    let outcome = (|| {
        let options = resolution::parse_options(query)?;
        let selector = match (&options.version_id, &options.version_time) {
            (Some(v), _) => {
                VersionSelector::VersionId(Hash::from_hex(v).map_err(|_| ResolutionError::not_found(&format!("{did}?versionId={v}")))?)
            }
            (None, Some(t)) => VersionSelector::VersionTime(
                parse_rfc3339(t).ok_or_else(|| ResolutionError::invalid_options(format!("versionTime {t:?} is not a date-time")))?,
            ),
            (None, None) => VersionSelector::Latest,
        };
        let (resolved, proof) = st.ledger.resolve_did(did, selector).map_err(|e| match &e {
            LedgerError::NoSuchDid(_) => ResolutionError::not_found(did),
            LedgerError::Did(d) if d.code() == "notFound" => ResolutionError::NotFound(d.to_string()),
            LedgerError::Did(d) if d.code() == "invalidDid" => ResolutionError::invalid_did(did, &d.to_string()),
            _ => {
                tracing::error!(error = %e, did, "did resolution failed");
                ResolutionError::Internal("internal error".into())
            }
        })?;
        let repr = negotiated.clone()?.representation;
        Ok::<_, ResolutionError>((repr, resolved, proof))
    })();
    match outcome {
        Ok((repr, r, proof)) => {
            let proven = proof.entries.len();
            let extra = json!({ "dojangProof": proof });
            let (s, c, b) = resolution::render_success_as(format, repr, &r.document, &r.metadata, extra, r.deactivated);
            (s, c, b, Some(proven))
        }
        Err(e) => {
            let (s, c, b) = resolution::render_error_as(format, &e);
            (s, c, b, None)
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct VerifyQuery {
    salt: Option<String>,
}

fn parse_salt(hex_salt: &str) -> Result<[u8; 32], Problem> {
    let mut salt = [0u8; 32];
    hex::decode_to_slice(hex_salt, &mut salt).map_err(|_| {
        Problem::new(
            StatusCode::BAD_REQUEST,
            "bad-salt",
            "bad salt",
            format!("salt {:?} is not 64 hex characters", hex_salt.chars().take(80).collect::<String>()),
        )
    })?;
    Ok(salt)
}

/// `POST /v1/documents/verify` (`specs/api.md` §4.12): the document file, raw with
/// `?salt=`, or multipart with `file` and `salt` or `receipt`. Answers the verdict with the
/// offline proof bundle. A commitment the ledger does not hold is `unknown` (unproven:
/// absence cannot be proven).
async fn verify_document(
    State(st): State<ApiState>,
    headers: HeaderMap,
    q: Result<Query<VerifyQuery>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Problem> {
    let Query(q) = q.map_err(query_problem)?;
    let body = body.map_err(body_problem)?;
    let ct = content_type(&headers).to_ascii_lowercase();
    let (file, salt) = if ct == "multipart/form-data" {
        let boundary = multer::parse_boundary(headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or(""))
            .map_err(|e| Problem::new(StatusCode::BAD_REQUEST, "bad-multipart", "bad multipart body", e.to_string()))?;
        let mut form = multer::Multipart::new(futures_util::stream::once(async move { Ok::<_, std::io::Error>(body) }), boundary);
        let (mut file, mut salt) = (None, q.salt.clone());
        while let Some(field) = form
            .next_field()
            .await
            .map_err(|e| Problem::new(StatusCode::BAD_REQUEST, "bad-multipart", "bad multipart body", e.to_string()))?
        {
            let name = field.name().unwrap_or_default().to_owned();
            let data = field
                .bytes()
                .await
                .map_err(|e| Problem::new(StatusCode::BAD_REQUEST, "bad-multipart", "bad multipart body", e.to_string()))?;
            match name.as_str() {
                "file" => file = Some(data),
                "salt" => salt = Some(String::from_utf8_lossy(&data).trim().to_owned()),
                "receipt" => {
                    let r = dojang_core::documents::Receipt::decode(&String::from_utf8_lossy(&data))
                        .map_err(|e| Problem::new(StatusCode::BAD_REQUEST, "bad-receipt", "bad receipt", e.to_string()))?;
                    salt = Some(r.salt);
                }
                _ => {}
            }
        }
        (
            file.ok_or_else(|| Problem::new(StatusCode::BAD_REQUEST, "bad-multipart", "missing file", "the form has no \"file\" field"))?,
            salt,
        )
    } else {
        (body, q.salt.clone())
    };
    let salt = parse_salt(
        &salt.ok_or_else(|| Problem::new(StatusCode::BAD_REQUEST, "bad-salt", "missing salt", "give the salt (?salt= or a receipt)"))?,
    )?;
    let commitment = dojang_core::documents::commitment(&salt, &file);
    document_answer(&st, commitment)
}

/// `GET /v1/documents/{commitment}`: the same answer by commitment, so a verifier never
/// has to send the file or its salt to a node (`specs/documents.md` §9.3).
async fn get_document(State(st): State<ApiState>, c: Result<Path<String>, PathRejection>) -> Result<Response, Problem> {
    let Path(c) = c.map_err(path_problem)?;
    let commitment = Hash::from_hex(&c).map_err(|e| Problem::new(StatusCode::BAD_REQUEST, "bad-path", "bad commitment", e.to_string()))?;
    document_answer(&st, commitment)
}

fn document_answer(st: &ApiState, commitment: Hash) -> Result<Response, Problem> {
    let answer = st.ledger.document_at_checkpoint(&commitment).map_err(|e| ledger_problem(&e))?;
    let Some((record, registry, proof)) = answer else {
        return Ok(Json(json!({ "verdict": "unknown", "commitment": commitment })).into_response());
    };
    let verdict = dojang_core::documents::verdict(Some(&record), &registry, st.clock.now_ms());
    let issuer_name = registry.issuer(&record.issuer).map(|i| i.issuer.name.clone());
    Ok(Json(json!({
        "verdict": verdict,
        "commitment": commitment,
        "issuer": record.issuer,
        "issuerName": issuer_name,
        "documentType": record.document_type,
        "issuedAt": dojang_core::did_dojang::format_rfc3339_ms(record.issued_at),
        "record": record,
        "proof": proof,
    }))
    .into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpiringQuery {
    holder: String,
    days: Option<u64>,
}

/// `GET /v1/documents/expiring?holder=&days=`: a holder's documents that lapse soon.
async fn expiring_documents(State(st): State<ApiState>, q: Result<Query<ExpiringQuery>, QueryRejection>) -> Result<Response, Problem> {
    let Query(q) = q.map_err(query_problem)?;
    let days = q.days.unwrap_or(30).min(3650);
    let list = st.ledger.expiring(&q.holder, st.clock.now_ms(), days * 86_400_000).map_err(|e| ledger_problem(&e))?;
    Ok(Json(json!({ "holder": q.holder, "days": days, "documents": list })).into_response())
}

/// `GET /v1/registry[?size=N]`: the trusted-issuer registry as of a published checkpoint,
/// with every change entry proven against it.
async fn get_registry(State(st): State<ApiState>, q: Result<Query<SizeQuery>, QueryRejection>) -> Result<Response, Problem> {
    let Query(q) = q.map_err(query_problem)?;
    let (registry, cp, changes) = st.ledger.registry_at(q.size).map_err(|e| ledger_problem(&e))?;
    Ok(Json(json!({
        "version": registry.version(),
        "treeSize": cp.checkpoint.size,
        "issuers": registry.issuers().collect::<Vec<_>>(),
        "checkpoint": cp.to_text(),
        "changes": changes,
    }))
    .into_response())
}

async fn genesis(State(st): State<ApiState>) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], st.genesis_json.as_str().to_owned()).into_response()
}

async fn healthz(State(st): State<ApiState>) -> Response {
    Json(json!({ "status": "ok", "tree_size": st.ledger.size() })).into_response()
}

async fn render_metrics(State(st): State<ApiState>) -> Response {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], st.metrics.render()).into_response()
}
