//! The access-log and citizen-audit endpoints (`specs/api.md` §4.22,
//! `specs/access-log.md` §16): recording access events, DID challenge/token
//! authentication, a subject's history with completeness proofs, the live feed, and the
//! auditor's view.
//!
//! Authentication is stateless (`dojang_core::auth`): challenges and tokens are signed
//! by this node's validator key. The only state is the set of challenge nonces already
//! answered, kept until they expire, so a signed answer cannot be replayed.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use dojang_core::audit::{self, GRANT_HEADER};
use dojang_core::auth::{self, Claims, Expect, Role};
use dojang_core::did_key::DidKey;
use dojang_core::entry::{Entry, Kind};
use futures_util::stream::Stream;
use rand_core::{OsRng, RngCore};
use serde::Deserialize;
use serde_json::json;

use super::{ApiState, BatchRequest, Problem, body_problem, ledger_problem, path_problem, query_problem};
use crate::ledger::{ChainRequest, LedgerError};

/// Most challenges awaiting an answer or remembered as answered; beyond it new
/// challenges are refused with 503 until old ones expire.
const MAX_OPEN_CHALLENGES: usize = 100_000;
/// Most slots all grants of one request may open (each costs a GGM walk and a hash).
const MAX_REQUEST_SLOTS: u64 = 1 << 18;
/// Most events one auditor page returns.
const MAX_AUDITOR_PAGE: usize = 1000;

/// Answered challenge nonces and their expiry (ms), pruned as they expire; and the
/// signal that ends open feeds when the server shuts down.
#[derive(Debug)]
pub struct AuthState {
    answered: Mutex<HashMap<String, u64>>,
    pub(super) closing: Arc<tokio::sync::watch::Sender<bool>>,
}

impl Default for AuthState {
    fn default() -> Self {
        AuthState { answered: Mutex::default(), closing: Arc::new(tokio::sync::watch::channel(false).0) }
    }
}

impl AuthState {
    /// Records `nonce` as answered; false if it already was (a replay).
    fn mark_answered(&self, nonce: &str, exp: u64, now: u64) -> Result<bool, Problem> {
        let mut m = self.answered.lock().unwrap_or_else(|p| p.into_inner());
        m.retain(|_, e| *e > now);
        if m.len() >= MAX_OPEN_CHALLENGES {
            return Err(Problem::new(StatusCode::SERVICE_UNAVAILABLE, "busy", "too many open challenges", "try again shortly"));
        }
        Ok(m.insert(nonce.to_owned(), exp).is_none())
    }
}

pub(super) fn routes() -> axum::Router<ApiState> {
    axum::Router::new()
        .route("/v1/access-events", post(record_events))
        .route("/v1/access/tags/{tag}", get(tag_status))
        .route("/v1/auth/challenge", post(challenge))
        .route("/v1/auth/token", post(token))
        .route("/v1/audit/history", get(history))
        .route("/v1/audit/feed", get(feed))
        .route("/v1/audit/auditor", get(auditor_events))
}

fn auth_problem(e: &auth::AuthError) -> Problem {
    let status = match e {
        auth::AuthError::TooLong { .. } | auth::AuthError::Malformed { .. } => StatusCode::BAD_REQUEST,
        _ => StatusCode::UNAUTHORIZED,
    };
    Problem::new(status, e.slug(), "authentication failed", e.to_string())
}

fn audit_problem(e: &audit::AuditError) -> Problem {
    Problem::new(StatusCode::BAD_REQUEST, "bad-grant", "bad grant", e.to_string())
}

fn json_body<T: serde::de::DeserializeOwned>(body: Result<Bytes, BytesRejection>, shape: &str) -> Result<T, Problem> {
    let body = body.map_err(body_problem)?;
    serde_json::from_slice(&body)
        .map_err(|e| Problem::new(StatusCode::BAD_REQUEST, "bad-json", "malformed json", format!("expected {shape}: {e}")))
}

/// `POST /v1/access-events`: a batch `{"entries": [base64, …]}` of signed
/// `access-event/v1` entries (access-log §16.6). Any other kind is refused before sequencing.
async fn record_events(State(st): State<ApiState>, body: Result<Bytes, BytesRejection>) -> Result<Response, Problem> {
    let req: BatchRequest = json_body(body, "{\"entries\": [base64, …]}")?;
    // Only the envelope's kind is looked at here; the write path checks everything.
    super::submit_batch(&st, &req, |i, bytes| match Entry::decode(bytes) {
        Ok(entry) if entry.kind != Kind::AccessEvent => Err(Problem::new(
            StatusCode::BAD_REQUEST,
            "wrong-kind",
            "not an access event",
            format!("entries[{i}] is a {} entry; this endpoint takes access-event/v1 only", entry.kind.name()),
        )),
        _ => Ok(()),
    })
    .await
}

fn parse_tag(s: &str) -> Result<[u8; 32], Problem> {
    hex::decode(s)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| Problem::new(StatusCode::BAD_REQUEST, "bad-tag", "bad tag", format!("tag {s:?} is not 64 hex digits")))
}

/// `GET /v1/access/tags/{tag}`: whether a slot tag is taken (access-log §16.6). Recording agencies
/// use it to find a subject's next free slot. Tags are public on the ledger anyway.
async fn tag_status(State(st): State<ApiState>, tag: Result<Path<String>, PathRejection>) -> Result<Response, Problem> {
    let Path(tag) = tag.map_err(path_problem)?;
    let t = parse_tag(&tag)?;
    match st.ledger.access_tag_index(&t).map_err(|e| ledger_problem(&e))? {
        Some(index) => Ok(Json(json!({ "tag": tag, "index": index })).into_response()),
        None => {
            Err(Problem::new(StatusCode::NOT_FOUND, "unknown-tag", "no event with this tag", format!("no access event carries tag {tag}")))
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ChallengeRequest {
    did: String,
}

/// The DID's current document: did:key derived, did:dojang from the ledger (not
/// deactivated). Authentication always uses the current keys.
fn current_document(st: &ApiState, did: &str) -> Result<serde_json::Value, Problem> {
    let unknown = |detail: String| Problem::new(StatusCode::UNAUTHORIZED, "unknown-did", "unknown did", detail);
    if did.starts_with("did:key:") {
        return DidKey::parse(did).map(|k| k.document()).map_err(|e| unknown(format!("{did:?}: {e}")));
    }
    if did.starts_with("did:dojang:") {
        let state =
            st.ledger.did_state(did).map_err(|e| ledger_problem(&e))?.ok_or_else(|| unknown(format!("{did} is not on this ledger")))?;
        if state.deactivated() {
            return Err(unknown(format!("{did} is deactivated")));
        }
        return Ok(state.document());
    }
    Err(unknown(format!("{:?} is neither a did:key nor a did:dojang", did.chars().take(120).collect::<String>())))
}

/// `POST /v1/auth/challenge {"did"}`: a challenge for the DID to sign (§16.1).
async fn challenge(State(st): State<ApiState>, body: Result<Bytes, BytesRejection>) -> Result<Response, Problem> {
    let req: ChallengeRequest = json_body(body, "{\"did\": …}")?;
    current_document(&st, &req.did)?;
    let now = st.clock.now_ms();
    let role = if st.ledger.rules().genesis.auditor(&req.did).is_some() { Role::Auditor } else { Role::Subject };
    let mut nonce = [0u8; 16];
    OsRng.fill_bytes(&mut nonce);
    let claims = Claims {
        typ: "challenge".into(),
        aud: st.ledger.signer().id.clone(),
        chain: st.ledger.rules().genesis_hash.to_hex(),
        did: req.did,
        role,
        iat: now,
        exp: now + auth::CHALLENGE_TTL_MS,
        nonce: hex::encode(nonce),
    };
    let text = auth::issue(&claims, &st.ledger.signer().key);
    Ok(Json(json!({ "challenge": text, "expires_ms": claims.exp, "role": claims.role })).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct TokenRequest {
    challenge: String,
    verification_method: String,
    /// base64url Ed25519 signature over `auth::response_signing_input`.
    signature: String,
}

fn expect<'a>(st: &'a ApiState, typ: &'static str) -> Expect<'a> {
    Expect { typ, aud: &st.ledger.signer().id, genesis_hash: &st.ledger.rules().genesis_hash, now_ms: st.clock.now_ms() }
}

/// `POST /v1/auth/token`: exchanges a signed challenge for a short-lived token (§16.2).
async fn token(State(st): State<ApiState>, body: Result<Bytes, BytesRejection>) -> Result<Response, Problem> {
    let req: TokenRequest = json_body(body, "{\"challenge\", \"verificationMethod\", \"signature\"}")?;
    let node_vk = st.ledger.signer().key.verifying_key();
    let ch = auth::open(&req.challenge, &node_vk, expect(&st, "challenge")).map_err(|e| auth_problem(&e))?;
    let doc = current_document(&st, &ch.did)?;
    let genesis_hash = st.ledger.rules().genesis_hash;
    auth::verify_answer(&genesis_hash, &req.challenge, &doc, &req.verification_method, &req.signature).map_err(|e| auth_problem(&e))?;
    let now = st.clock.now_ms();
    // Only a verified answer spends the challenge, so a forged one cannot burn it.
    if !st.auth.mark_answered(&ch.nonce, ch.exp, now)? {
        return Err(auth_problem(&auth::AuthError::Replayed { nonce: ch.nonce }));
    }
    let mut nonce = [0u8; 16];
    OsRng.fill_bytes(&mut nonce);
    let claims = Claims { typ: "token".into(), iat: now, exp: now + auth::TOKEN_TTL_MS, nonce: hex::encode(nonce), ..ch };
    let text = auth::issue(&claims, &st.ledger.signer().key);
    Ok(Json(json!({ "token": text, "expires_ms": claims.exp, "did": claims.did, "role": claims.role })).into_response())
}

/// The token's claims, from `Authorization: Bearer <token>`.
fn authenticate(st: &ApiState, headers: &HeaderMap) -> Result<Claims, Problem> {
    let value = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).ok_or_else(|| {
        Problem::new(
            StatusCode::UNAUTHORIZED,
            "missing-token",
            "authentication required",
            "send Authorization: Bearer <token> (POST /v1/auth/token)",
        )
    })?;
    let token = value.strip_prefix("Bearer ").ok_or_else(|| {
        Problem::new(
            StatusCode::UNAUTHORIZED,
            "missing-token",
            "authentication required",
            "the Authorization header must be Bearer <token>",
        )
    })?;
    let node_vk = st.ledger.signer().key.verifying_key();
    auth::open(token.trim(), &node_vk, expect(st, "token")).map_err(|e| auth_problem(&e))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HistoryQuery {
    subject: Option<String>,
}

/// Authenticates a subject (not an auditor) for its own history, and turns the grant
/// header into per-writer slot tags.
fn subject_chains(st: &ApiState, headers: &HeaderMap, subject: Option<&str>) -> Result<(Claims, Vec<ChainRequest>), Problem> {
    let claims = authenticate(st, headers)?;
    if let Some(s) = subject
        && s != claims.did
    {
        return Err(Problem::new(
            StatusCode::FORBIDDEN,
            "not-your-history",
            "not your history",
            format!("the token is for {}; a history is only served to its subject", claims.did),
        ));
    }
    if claims.role != Role::Subject {
        return Err(Problem::new(StatusCode::FORBIDDEN, "wrong-role", "wrong role", "auditors read GET /v1/audit/auditor"));
    }
    let text = headers.get(GRANT_HEADER).and_then(|v| v.to_str().ok()).ok_or_else(|| {
        Problem::new(StatusCode::BAD_REQUEST, "bad-grant", "grant required", format!("send the slot grants in the {GRANT_HEADER} header"))
    })?;
    let grants = audit::decode_grants(text).map_err(|e| audit_problem(&e))?;
    // Each slot costs a GGM walk and a hash: bound the work one request can ask for.
    let slots: u64 = grants.iter().map(|g| 1u64 << (32 - u32::from(g.depth.min(32)))).sum();
    if slots > MAX_REQUEST_SLOTS {
        return Err(Problem::new(
            StatusCode::BAD_REQUEST,
            "bad-grant",
            "grant too large",
            format!("the grants open {slots} slots, over the limit of {MAX_REQUEST_SLOTS} per request"),
        ));
    }
    let writers = audit::writer_keys(&st.ledger.rules().genesis);
    let mut chains: Vec<ChainRequest> = Vec::new();
    for g in &grants {
        if !writers.contains(&g.writer) {
            return Err(Problem::new(
                StatusCode::BAD_REQUEST,
                "bad-grant",
                "bad grant",
                format!("{:?} is not a genesis writer key", g.writer),
            ));
        }
        let (start, tags) = g.tags(&claims.did).map_err(|e| audit_problem(&e))?;
        match chains.iter_mut().find(|c| c.writer == g.writer) {
            // Several grants of one writer must tile its range without gaps.
            Some(c) if u64::from(c.start) + c.tags.len() as u64 == u64::from(start) => c.tags.extend(tags),
            Some(_) => {
                return Err(Problem::new(
                    StatusCode::BAD_REQUEST,
                    "bad-grant",
                    "bad grant",
                    format!("grants for {:?} are not contiguous", g.writer),
                ));
            }
            None => chains.push(ChainRequest { writer: g.writer.clone(), start, tags }),
        }
    }
    Ok((claims, chains))
}

/// `GET /v1/audit/history`: the caller's own events with completeness proofs (§16.3).
async fn history(
    State(st): State<ApiState>,
    headers: HeaderMap,
    q: Result<Query<HistoryQuery>, QueryRejection>,
) -> Result<Response, Problem> {
    let Query(q) = q.map_err(query_problem)?;
    let (claims, chains) = subject_chains(&st, &headers, q.subject.as_deref())?;
    let bundle = tokio::task::spawn_blocking(move || st.ledger.access_history(&claims.did, &chains))
        .await
        .map_err(|e| Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error", e.to_string()))?
        .map_err(|e| match e {
            LedgerError::GrantExhausted { .. } => Problem::new(StatusCode::CONFLICT, "grant-exhausted", "grant too small", e.to_string()),
            e => ledger_problem(&e),
        })?;
    Ok(([(header::CACHE_CONTROL, "no-store")], Json(bundle)).into_response())
}

/// `GET /v1/audit/feed`: server-sent events, one `access` event when a granted slot
/// (normally the next one of each chain) fills (§16.4). Ends when the token expires.
async fn feed(State(st): State<ApiState>, headers: HeaderMap) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, Problem> {
    let (claims, chains) = subject_chains(&st, &headers, None)?;
    let mut watch: HashMap<[u8; 32], (String, u32)> = HashMap::new();
    for c in &chains {
        for (i, t) in c.tags.iter().enumerate() {
            watch.insert(*t, (c.writer.clone(), c.start.saturating_add(u32::try_from(i).unwrap_or(u32::MAX))));
        }
    }
    // Subscribe before looking at what is already there, so nothing falls in between.
    let mut rx = st.ledger.subscribe_access();
    let mut ready = Vec::new();
    for (tag, (writer, slot)) in &watch {
        if let Some(index) = st.ledger.access_tag_index(tag).map_err(|e| ledger_problem(&e))? {
            ready.push(json!({"writer": writer, "slot": slot, "index": index}));
        }
    }
    let ledger = st.ledger.clone();
    let clock = st.clock.clone();
    let mut closing = st.auth.closing.subscribe();
    let stream = async_stream(move |tx| async move {
        for r in ready {
            if tx.send(Event::default().event("access").data(r.to_string())).await.is_err() {
                return;
            }
        }
        loop {
            let left = claims.exp.saturating_sub(clock.now_ms());
            let next = tokio::select! {
                n = tokio::time::timeout(Duration::from_millis(left), rx.recv()) => n,
                _ = closing.wait_for(|c| *c) => return,
            };
            match next {
                Err(_) => {
                    let _ = tx.send(Event::default().event("expired").data("{\"reason\":\"token expired\"}")).await;
                    return;
                }
                Ok(Ok(commit)) => {
                    for (tag, index) in &commit.events {
                        if let Some((writer, slot)) = watch.remove(tag) {
                            let data = json!({"writer": writer, "slot": slot, "index": index, "tree_size": commit.tree_size});
                            if tx.send(Event::default().event("access").data(data.to_string())).await.is_err() {
                                return;
                            }
                        }
                    }
                }
                Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => {
                    // Missed commits: look the watched tags up directly.
                    let mut found = Vec::new();
                    for (tag, (writer, slot)) in &watch {
                        if let Ok(Some(index)) = ledger.access_tag_index(tag) {
                            found.push((*tag, json!({"writer": writer, "slot": slot, "index": index})));
                        }
                    }
                    for (tag, data) in found {
                        watch.remove(&tag);
                        if tx.send(Event::default().event("access").data(data.to_string())).await.is_err() {
                            return;
                        }
                    }
                }
                Ok(Err(tokio::sync::broadcast::error::RecvError::Closed)) => return,
            }
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

/// A stream fed by a task through a small channel (the task ends when the client leaves).
fn async_stream<F, Fut>(f: F) -> impl Stream<Item = Result<Event, Infallible>>
where
    F: FnOnce(tokio::sync::mpsc::Sender<Event>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, mut rx) = tokio::sync::mpsc::channel(16);
    tokio::spawn(f(tx));
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx).map(|o| o.map(Ok)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditorQuery {
    from: Option<u64>,
    limit: Option<usize>,
}

/// `GET /v1/audit/auditor?from=&limit=`: for a genesis auditor, the events sealed to its
/// key from leaf index `from`, with inclusion proofs (§16.5).
async fn auditor_events(
    State(st): State<ApiState>,
    headers: HeaderMap,
    q: Result<Query<AuditorQuery>, QueryRejection>,
) -> Result<Response, Problem> {
    let Query(q) = q.map_err(query_problem)?;
    let claims = authenticate(&st, &headers)?;
    if claims.role != Role::Auditor || st.ledger.rules().genesis.auditor(&claims.did).is_none() {
        return Err(Problem::new(
            StatusCode::FORBIDDEN,
            "not-an-auditor",
            "not an auditor",
            format!("{} is not a genesis auditor", claims.did),
        ));
    }
    let kid = DidKey::parse(&claims.did)
        .map_err(|e| Problem::new(StatusCode::FORBIDDEN, "not-an-auditor", "not an auditor", e.to_string()))?
        .x25519_key_id();
    let limit = q.limit.unwrap_or(MAX_AUDITOR_PAGE).clamp(1, MAX_AUDITOR_PAGE);
    let from = q.from.unwrap_or(0);
    let (checkpoint, entries) = tokio::task::spawn_blocking(move || st.ledger.auditor_events(&kid, from, limit))
        .await
        .map_err(|e| Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error", e.to_string()))?
        .map_err(|e| ledger_problem(&e))?;
    Ok(([(header::CACHE_CONTROL, "no-store")], Json(json!({ "checkpoint": checkpoint, "entries": entries }))).into_response())
}
