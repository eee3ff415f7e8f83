//! VC-API endpoints (`specs/api.md` §4.16-§4.21, `specs/credentials.md` §8): issuing for
//! the agency's operator, verifying credentials and presentations for anyone, presentation
//! challenges, and status lists with their proofs. Logic lives in
//! [`crate::credentials::CredentialService`]; this file parses requests and maps errors to
//! RFC 9457 problems.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use dojang_core::did_dojang::format_rfc3339_ms;
use dojang_core::vc::status_list::{self, StatusPurpose};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiState, Problem, body_problem, ledger_problem, path_problem};
use crate::credentials::CredentialError;

fn cred_problem(e: &CredentialError) -> Problem {
    let (status, title) = match e {
        CredentialError::NotConfigured => (StatusCode::NOT_FOUND, "issuing not configured"),
        CredentialError::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthenticated"),
        CredentialError::Vc(_) | CredentialError::BadRequest(_) => (StatusCode::BAD_REQUEST, "invalid request"),
        CredentialError::UnknownChallenge => (StatusCode::BAD_REQUEST, "unknown challenge"),
        CredentialError::Refused(a) => {
            let p = super::admission_problem(a);
            return Problem::new(p.status, e.slug(), p.title, e.to_string());
        }
        CredentialError::Submit(_) => (StatusCode::SERVICE_UNAVAILABLE, "submission failed"),
        CredentialError::ReadReplica(d) => return super::read_replica_problem(d.clone()),
        CredentialError::Ledger(l) => return ledger_problem(l),
        CredentialError::Config(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal error"),
    };
    Problem::new(status, e.slug(), title, e.to_string())
}

fn parse_json<T: serde::de::DeserializeOwned>(body: Result<Bytes, BytesRejection>) -> Result<T, Problem> {
    let body = body.map_err(body_problem)?;
    if body.len() > dojang_core::vc::MAX_DOCUMENT_LEN * 2 {
        return Err(Problem::new(StatusCode::PAYLOAD_TOO_LARGE, "request-too-large", "request too large", "over 512 KiB"));
    }
    serde_json::from_slice(&body).map_err(|e| Problem::new(StatusCode::BAD_REQUEST, "bad-request", "invalid json request", e.to_string()))
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct IssueRequest {
    credential: Value,
    #[serde(default)]
    options: IssueOptions,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct IssueOptions {
    cryptosuite: Option<String>,
}

/// `POST /credentials/issue` (api §4.16): operator-authenticated; 201 with the signed
/// credential.
pub(super) async fn issue(
    State(st): State<ApiState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Problem> {
    st.credentials.authenticate(bearer(&headers)).map_err(|e| cred_problem(&e))?;
    let req: IssueRequest = parse_json(body)?;
    let vc = st.credentials.issue(req.credential, req.options.cryptosuite.as_deref()).map_err(|e| cred_problem(&e))?;
    Ok((StatusCode::CREATED, Json(json!({ "verifiableCredential": vc }))).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct VerifyRequest {
    #[serde(rename = "verifiableCredential")]
    verifiable_credential: Value,
    #[serde(default)]
    options: VerifyOptions,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct VerifyOptions {
    /// The verification time (xsd:dateTime); default: the node's clock.
    at: Option<String>,
}

/// `POST /credentials/verify` (api §4.17): 200 with `{verified, checks, problems}`,
/// whatever the outcome of the checks.
pub(super) async fn verify(State(st): State<ApiState>, body: Result<Bytes, BytesRejection>) -> Result<Response, Problem> {
    let req: VerifyRequest = parse_json(body)?;
    let at = match req.options.at.as_deref() {
        None => None,
        Some(t) => Some(dojang_core::did_dojang::parse_rfc3339(t).ok_or_else(|| {
            Problem::new(StatusCode::BAD_REQUEST, "bad-request", "invalid request", format!("options.at {t:?} is not an xsd:dateTime"))
        })?),
    };
    let st2 = st.clone();
    let result = tokio::task::spawn_blocking(move || st2.credentials.verify_credential(&req.verifiable_credential, at))
        .await
        .map_err(|e| Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error", e.to_string()))?;
    Ok(Json(result).into_response())
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ChallengeRequest {
    domain: Option<String>,
}

/// `POST /presentations/challenge` (api §4.18): a fresh challenge, valid ten minutes.
pub(super) async fn challenge(State(st): State<ApiState>, body: Result<Bytes, BytesRejection>) -> Result<Response, Problem> {
    let body = body.map_err(body_problem)?;
    let req: ChallengeRequest = if body.is_empty() {
        ChallengeRequest::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| Problem::new(StatusCode::BAD_REQUEST, "bad-request", "invalid json request", e.to_string()))?
    };
    if req.domain.as_ref().is_some_and(|d| d.is_empty() || d.len() > 256) {
        return Err(Problem::new(StatusCode::BAD_REQUEST, "bad-request", "invalid request", "domain must be 1 to 256 bytes"));
    }
    let (challenge, expires) = st.credentials.new_challenge(req.domain.clone());
    Ok((StatusCode::CREATED, Json(json!({ "challenge": challenge, "domain": req.domain, "expires": format_rfc3339_ms(expires) })))
        .into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct VpVerifyRequest {
    #[serde(rename = "verifiablePresentation")]
    verifiable_presentation: Value,
    options: VpOptions,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct VpOptions {
    challenge: Option<String>,
    domain: String,
}

/// `POST /presentations/verify` (api §4.19): 200 with the result, including `replay`.
pub(super) async fn verify_presentation(State(st): State<ApiState>, body: Result<Bytes, BytesRejection>) -> Result<Response, Problem> {
    let req: VpVerifyRequest = parse_json(body)?;
    let st2 = st.clone();
    let result = tokio::task::spawn_blocking(move || {
        st2.credentials.verify_presentation(&req.verifiable_presentation, req.options.challenge, req.options.domain)
    })
    .await
    .map_err(|e| Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error", e.to_string()))?
    .map_err(|e| cred_problem(&e))?;
    Ok(Json(result).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct CreateListRequest {
    id: String,
    purpose: String,
    #[serde(default = "default_size")]
    size: u64,
    credential_type: String,
}

fn default_size() -> u64 {
    status_list::MIN_LIST_BITS
}

/// `POST /v1/status-lists` (api §4.20): operator-authenticated; creates a list of the
/// configured issuer (a `status-list-update/v1` entry with sequence 0).
pub(super) async fn create_list(
    State(st): State<ApiState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Problem> {
    st.credentials.authenticate(bearer(&headers)).map_err(|e| cred_problem(&e))?;
    let req: CreateListRequest = parse_json(body)?;
    let purpose = StatusPurpose::from_name(&req.purpose).ok_or_else(|| {
        Problem::new(StatusCode::BAD_REQUEST, "bad-request", "invalid request", "purpose must be revocation or suspension")
    })?;
    let receipt = st.credentials.create_list(&req.id, purpose, req.size, &req.credential_type).await.map_err(|e| cred_problem(&e))?;
    Ok((StatusCode::CREATED, Json(json!({ "id": req.id, "receipt": receipt }))).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct StatusRequest {
    status_list_credential: String,
    status_list_index: String,
    status: bool,
}

/// `POST /credentials/status` (api §4.20): operator-authenticated; sets (revoke, suspend)
/// or clears (reinstate a suspension) one bit.
pub(super) async fn update_status(
    State(st): State<ApiState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Problem> {
    st.credentials.authenticate(bearer(&headers)).map_err(|e| cred_problem(&e))?;
    let req: StatusRequest = parse_json(body)?;
    let index: u64 = req
        .status_list_index
        .parse()
        .map_err(|_| Problem::new(StatusCode::BAD_REQUEST, "bad-request", "invalid request", "statusListIndex must be a decimal string"))?;
    let receipt = st.credentials.set_status(&req.status_list_credential, index, req.status).await.map_err(|e| cred_problem(&e))?;
    Ok(Json(json!({ "receipt": receipt })).into_response())
}

/// `GET /v1/status-lists/{id}` (api §4.21): the list's state as of the latest checkpoint
/// and its `BitstringStatusListCredential` view (unsigned: the ledger proof is the
/// authority; see credentials §6.6).
pub(super) async fn get_list(State(st): State<ApiState>, id: Result<Path<String>, PathRejection>) -> Result<Response, Problem> {
    let Path(id) = id.map_err(path_problem)?;
    let answer = crate::status_lists::status_at_checkpoint(&st.ledger, &id, 0).map_err(|e| ledger_problem(&e))?;
    let Some((state, bits, _)) = answer else {
        return Err(Problem::new(StatusCode::NOT_FOUND, "not-found", "not found", format!("no status list {id}")));
    };
    let valid_from = format_rfc3339_ms(st.clock.now_ms());
    Ok(Json(json!({ "statusList": state, "credential": status_list::status_list_credential(&state, &bits, &valid_from) })).into_response())
}

/// `GET /v1/status-lists/{id}/{index}` (api §4.21): one bit with its proof against the
/// latest checkpoint (credentials §6.5).
pub(super) async fn get_bit(State(st): State<ApiState>, p: Result<Path<(String, u64)>, PathRejection>) -> Result<Response, Problem> {
    let Path((id, index)) = p.map_err(path_problem)?;
    let st2 = st.clone();
    let answer = tokio::task::spawn_blocking(move || crate::status_lists::status_at_checkpoint(&st2.ledger, &id, index).map(|a| (a, id)))
        .await
        .map_err(|e| Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error", e.to_string()))?;
    let (answer, id) = answer.map_err(|e| match e {
        crate::ledger::LedgerError::NoSuchEntry { index, size } => {
            Problem::new(StatusCode::NOT_FOUND, "not-found", "not found", format!("index {index} is beyond the list's {size} bits"))
        }
        e => ledger_problem(&e),
    })?;
    let Some((state, bits, proof)) = answer else {
        return Err(Problem::new(StatusCode::NOT_FOUND, "not-found", "not found", format!("no status list {id}")));
    };
    Ok(Json(json!({
        "list": state.id,
        "index": index,
        "bit": status_list::get_bit(&bits, index),
        "purpose": state.purpose,
        "issuer": state.issuer,
        "sequence": state.sequence,
        "proof": proof,
    }))
    .into_response())
}
