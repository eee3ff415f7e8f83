//! `GET /v1/blocks` and `GET /v1/blocks/{height}` (`specs/api.md` §4.23): the decided blocks
//! of a BFT chain with their commit certificates, exactly as stored
//! (`specs/consensus.md` §6). Read replicas follow the chain through them (§10); they
//! verify every record against the genesis file, so serving one needs no trust in the
//! server.

use axum::Router;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;

use super::{ApiState, Problem, path_problem};
use crate::consensus::certificate::{stored_height, stored_record};
use crate::storage::StorageError;

pub(super) fn routes() -> Router<ApiState> {
    Router::new().route("/v1/blocks", get(top)).route("/v1/blocks/{height}", get(block))
}

fn storage_problem(e: &StorageError) -> Problem {
    tracing::error!(error = %e, "block read failed");
    Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error", e.to_string())
}

/// `GET /v1/blocks`: `{"height": top}`, the last decided height stored here (0 before the
/// first block, and always on a one-validator chain, which stores no blocks).
async fn top(State(st): State<ApiState>) -> Result<Response, Problem> {
    let h = stored_height(st.ledger.store()).map_err(|e| storage_problem(&e))?;
    Ok(axum::Json(json!({ "height": h })).into_response())
}

/// `GET /v1/blocks/{height}`: the stored record (block and extended commit certificate,
/// `application/octet-stream`), or 404 `no-block` while that height is not decided here.
async fn block(State(st): State<ApiState>, height: Result<Path<u64>, PathRejection>) -> Result<Response, Problem> {
    let Path(height) = height.map_err(path_problem)?;
    match stored_record(st.ledger.store(), height).map_err(|e| storage_problem(&e))? {
        Some(record) => Ok(([(header::CONTENT_TYPE, "application/octet-stream")], record).into_response()),
        None => Err(Problem::new(
            StatusCode::NOT_FOUND,
            "no-block",
            "no such block",
            format!("height {height} is not decided on this node yet (or this chain stores no blocks)"),
        )),
    }
}
