//! `dojang did …`: create, update, rotate and deactivate `did:dojang` identifiers, resolve
//! any DID through a node, and check a saved resolution answer offline
//! (`specs/did-method-dojang.md`).
//!
//! Updates never trust the node: the CLI fetches the DID's proven history, verifies it
//! against the genesis file, and replays it locally to learn the current document and
//! version before it signs the next operation.

use std::path::PathBuf;

use anyhow::{Context as _, bail};
use base64::Engine as _;
use dojang_core::did_dojang::{
    self, CreateOp, DeactivateOp, DidOperation, DidState, DocumentContent, OpRecord, RotateOp, Service, UpdateOp, VerificationMethod,
};
use dojang_core::did_key::DidKey;
use dojang_core::did_proof::DidProof;
use dojang_core::entry::{self, Entry, Kind};
use dojang_core::genesis::Genesis;
use dojang_core::hash::Hash;
use dojang_node::keyfile::KeyFile;
use ed25519_dalek::SigningKey;
use serde_json::{Value, json};

use crate::{client, emit, load_genesis};

#[derive(Debug, clap::Subcommand)]
pub enum DidCmd {
    /// Create a did:dojang controlled by --key (its X25519 twin becomes the key-agreement key).
    Create {
        #[command(flatten)]
        conn: Conn,
        /// Controller key file; signs this operation.
        #[arg(long)]
        key: PathBuf,
        /// Pre-commit a next key (KERI-style): only it can later rotate or deactivate.
        #[arg(long)]
        next_key: Option<PathBuf>,
        /// A service endpoint: ID,TYPE,URL (repeatable), e.g. hub,DojangHub,https://hub.example/.
        #[arg(long)]
        service: Vec<String>,
    },
    /// Add or remove services of a did:dojang (signed by a controller key).
    Update {
        #[command(flatten)]
        conn: Conn,
        #[arg(long)]
        key: PathBuf,
        #[arg(long)]
        did: String,
        /// ID,TYPE,URL (repeatable).
        #[arg(long)]
        add_service: Vec<String>,
        /// Service id to remove (repeatable).
        #[arg(long)]
        remove_service: Vec<String>,
    },
    /// Replace the controller keys (signed by the pre-committed next key, if any).
    Rotate {
        #[command(flatten)]
        conn: Conn,
        /// Signer: the pre-committed next key, or a controller key when none was committed.
        #[arg(long)]
        key: PathBuf,
        #[arg(long)]
        did: String,
        /// The new controller key.
        #[arg(long)]
        new_key: PathBuf,
        /// Pre-commit the key after that.
        #[arg(long)]
        next_key: Option<PathBuf>,
    },
    /// Deactivate a did:dojang for good.
    Deactivate {
        #[command(flatten)]
        conn: Conn,
        #[arg(long)]
        key: PathBuf,
        #[arg(long)]
        did: String,
    },
    /// Resolve a DID through a node (did:dojang answers carry a proof).
    Resolve {
        #[arg(long, default_value = "http://127.0.0.1:7300")]
        node: String,
        did: String,
        #[arg(long)]
        version_id: Option<String>,
        /// RFC 3339, e.g. 2026-12-04T10:00:00Z.
        #[arg(long)]
        version_time: Option<String>,
        /// Save the full resolution result here (for verify-resolution).
        #[arg(long)]
        save: Option<PathBuf>,
    },
    /// Check a saved did:dojang resolution result offline, with only the genesis file.
    VerifyResolution {
        #[arg(long)]
        genesis: PathBuf,
        #[arg(long)]
        file: PathBuf,
        /// The DID you asked for: refuse an answer about any other.
        #[arg(long)]
        did: Option<String>,
    },
}

#[derive(Debug, clap::Args)]
pub struct Conn {
    /// Node API URL.
    #[arg(long, default_value = "http://127.0.0.1:7300")]
    node: String,
    /// Genesis file to sign for and verify against; default: fetched from the node.
    #[arg(long)]
    genesis: Option<PathBuf>,
}

impl Conn {
    fn genesis(&self) -> anyhow::Result<Genesis> {
        match &self.genesis {
            Some(p) => load_genesis(p),
            None => Genesis::from_json(client::get_text(&self.node, "/v1/genesis")?.as_bytes()).context("the node's genesis is invalid"),
        }
    }
}

fn parse_service(s: &str) -> anyhow::Result<Service> {
    let mut parts = s.splitn(3, ',');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(id), Some(t), Some(url)) if !id.is_empty() && !t.is_empty() && !url.is_empty() => {
            Ok(Service { id: format!("#{}", id.trim_start_matches('#')), service_type: t.to_owned(), service_endpoint: url.to_owned() })
        }
        _ => bail!("service {s:?} is not ID,TYPE,URL"),
    }
}

fn load_key(path: &std::path::Path) -> anyhow::Result<(DidKey, SigningKey)> {
    let (_, key) = KeyFile::load(path)?;
    Ok((DidKey::from_verifying_key(&key.verifying_key()), key))
}

/// Signs `op` as an entry by `key` and submits it; returns the receipt.
fn submit_op(conn: &Conn, genesis: &Genesis, key: &SigningKey, op: &DidOperation, min_time_ms: u64) -> anyhow::Result<Value> {
    client::sign_and_post(&conn.node, genesis, key, Kind::DidOperation, op.encode(), min_time_ms)
}

/// Fetches the DID's proven history from the node, verifies it and replays it.
fn current_state(conn: &Conn, genesis: &Genesis, did: &str) -> anyhow::Result<DidState> {
    let answer: Value = serde_json::from_str(&client::get_text(&conn.node, &format!("/1.0/identifiers/{did}"))?)
        .context("the node's resolution result is not json")?;
    let proof = proof_of(&answer)?;
    let (document, metadata) =
        (answer.get("didDocument").unwrap_or(&Value::Null), answer.get("didDocumentMetadata").unwrap_or(&Value::Null));
    proof.verify_for(genesis, did, did_dojang::VersionSelector::Latest, document, metadata)?;
    let mut state: Option<DidState> = None;
    for p in &proof.entries {
        let bytes = base64::engine::general_purpose::STANDARD.decode(&p.entry)?;
        let e = Entry::decode(&bytes)?;
        let record = OpRecord::from_entry(&e, p.index, entry::leaf_hash(&bytes))?;
        // Operations the method refuses are not versions (specs/did-method-dojang.md).
        if let Ok(s) = did_dojang::apply_record(state.clone(), &record) {
            state = Some(s);
        }
    }
    state.with_context(|| format!("{did} has no valid operations"))
}

fn proof_of(answer: &Value) -> anyhow::Result<DidProof> {
    let p =
        answer.pointer("/didResolutionMetadata/dojangProof").context("the answer carries no dojangProof (is it a did:dojang result?)")?;
    serde_json::from_value(p.clone()).context("the dojangProof is malformed")
}

fn latest(state: &DidState) -> anyhow::Result<(Hash, u64)> {
    let v = state.latest_version().context("the did has no versions")?;
    Ok((Hash::from_hex(&v.version_id)?, v.time_ms))
}

fn done(json: bool, did: &str, what: &str, receipt: &Value) {
    emit(json, json!({ "did": did, "operation": what, "receipt": receipt }), || {
        format!(
            "{what}: {did}\ncommitted as entry {} (checkpoint size {})",
            receipt.get("index").cloned().unwrap_or_default(),
            receipt.get("tree_size").cloned().unwrap_or_default()
        )
    });
}

pub fn run(cmd: DidCmd, json: bool) -> anyhow::Result<()> {
    match cmd {
        DidCmd::Create { conn, key, next_key, service } => {
            let g = conn.genesis()?;
            let (dk, sk) = load_key(&key)?;
            let mut document = DocumentContent {
                verification_method: vec![
                    VerificationMethod { id: "#key-1".into(), method_type: "Multikey".into(), public_key_multibase: dk.multibase() },
                    VerificationMethod { id: "#key-2".into(), method_type: "Multikey".into(), public_key_multibase: dk.x25519_multibase() },
                ],
                authentication: vec!["#key-1".into()],
                assertion_method: vec!["#key-1".into()],
                key_agreement: vec!["#key-2".into()],
                ..Default::default()
            };
            for s in &service {
                document.service.push(parse_service(s)?);
            }
            let next = next_key.as_deref().map(load_key).transpose()?.map(|(d, _)| did_dojang::next_key_commitment(&d));
            let op = DidOperation::Create(CreateOp { document, controller_keys: vec![dk.did()], next_key_commitment: next, salt: None });
            op.validate()?;
            let did = op.did()?;
            let r = submit_op(&conn, &g, &sk, &op, 0)?;
            done(json, &did, "created", &r);
        }
        DidCmd::Update { conn, key, did, add_service, remove_service } => {
            let g = conn.genesis()?;
            let (_, sk) = load_key(&key)?;
            let state = current_state(&conn, &g, &did)?;
            let (previous, t) = latest(&state)?;
            let mut document = state.content().clone();
            for id in &remove_service {
                let id = format!("#{}", id.trim_start_matches('#'));
                let before = document.service.len();
                document.service.retain(|s| s.id != id);
                if document.service.len() == before {
                    bail!("{did} has no service {id}");
                }
            }
            for s in &add_service {
                document.service.push(parse_service(s)?);
            }
            let op = DidOperation::Update(UpdateOp { did: did.clone(), previous, document });
            op.validate()?;
            let r = submit_op(&conn, &g, &sk, &op, t)?;
            done(json, &did, "updated", &r);
        }
        DidCmd::Rotate { conn, key, did, new_key, next_key } => {
            let g = conn.genesis()?;
            let (_, sk) = load_key(&key)?;
            let (new_dk, _) = load_key(&new_key)?;
            let state = current_state(&conn, &g, &did)?;
            let (previous, t) = latest(&state)?;
            let next = next_key.as_deref().map(load_key).transpose()?.map(|(d, _)| did_dojang::next_key_commitment(&d));
            let op = DidOperation::Rotate(RotateOp {
                did: did.clone(),
                previous,
                controller_keys: vec![new_dk.did()],
                next_key_commitment: next,
            });
            op.validate()?;
            let r = submit_op(&conn, &g, &sk, &op, t)?;
            done(json, &did, "rotated", &r);
        }
        DidCmd::Deactivate { conn, key, did } => {
            let g = conn.genesis()?;
            let (_, sk) = load_key(&key)?;
            let state = current_state(&conn, &g, &did)?;
            let (previous, t) = latest(&state)?;
            let op = DidOperation::Deactivate(DeactivateOp { did: did.clone(), previous });
            op.validate()?;
            let r = submit_op(&conn, &g, &sk, &op, t)?;
            done(json, &did, "deactivated", &r);
        }
        DidCmd::Resolve { node, did, version_id, version_time, save } => {
            let mut q = Vec::new();
            if let Some(v) = &version_id {
                q.push(format!("versionId={v}"));
            }
            if let Some(t) = &version_time {
                q.push(format!("versionTime={t}"));
            }
            let path = if q.is_empty() { format!("/1.0/identifiers/{did}") } else { format!("/1.0/identifiers/{did}?{}", q.join("&")) };
            let text = client::get_text_any_status(&node, &path)?;
            if let Some(p) = save {
                std::fs::write(&p, &text).with_context(|| format!("cannot write {}", p.display()))?;
            }
            let answer: Value = serde_json::from_str(&text).context("the node's answer is not json")?;
            if let Some(err) = answer.pointer("/didResolutionMetadata/error") {
                bail!("cannot resolve {did}: {}", err.get("detail").and_then(Value::as_str).unwrap_or(&err.to_string()));
            }
            emit(json, answer.clone(), || {
                serde_json::to_string_pretty(answer.get("didDocument").unwrap_or(&Value::Null)).unwrap_or_default()
            });
        }
        DidCmd::VerifyResolution { genesis, file, did } => {
            let g = load_genesis(&genesis)?;
            let text = std::fs::read_to_string(&file).with_context(|| format!("cannot read {}", file.display()))?;
            let answer: Value = serde_json::from_str(&text).context("the answer is not json")?;
            let proof = proof_of(&answer)?;
            if let Some(d) = &did
                && d != &proof.did
            {
                bail!("the answer is about {}, not {d}", proof.did);
            }
            let (resolved, cp) = proof.verify(
                &g,
                answer.get("didDocument").unwrap_or(&Value::Null),
                answer.get("didDocumentMetadata").unwrap_or(&Value::Null),
            )?;
            let version = resolved.metadata.get("versionId").and_then(Value::as_str).unwrap_or("").to_owned();
            emit(
                json,
                json!({ "valid": true, "did": proof.did, "versionId": version, "deactivated": resolved.deactivated,
                        "operations": proof.entries.len(), "tree_size": cp.checkpoint.size, "signers": cp.signers,
                        "checkpoint_time": did_dojang::format_rfc3339_ms(cp.checkpoint.timestamp_ms) }),
                || {
                    format!(
                        "resolution valid: {} at version {version}{} — {} operations proven against the checkpoint of size {} made {} and signed by {}",
                        proof.did,
                        if resolved.deactivated { " (deactivated)" } else { "" },
                        proof.entries.len(),
                        cp.checkpoint.size,
                        did_dojang::format_rfc3339_ms(cp.checkpoint.timestamp_ms),
                        cp.signers.join(", ")
                    )
                },
            );
        }
    }
    Ok(())
}

/// The DID's current document: did:key derived locally; did:dojang resolved through
/// `node` with its proof verified against `genesis` (so a node cannot swap keys).
pub(crate) fn proven_document(node: &str, genesis: &Genesis, did: &str) -> anyhow::Result<Value> {
    if did.starts_with("did:key:") {
        return Ok(DidKey::parse(did).with_context(|| format!("{did} is not a valid did:key"))?.document());
    }
    let answer: Value = serde_json::from_str(&client::get_text(node, &format!("/1.0/identifiers/{did}"))?)
        .context("the node's resolution result is not json")?;
    let proof = proof_of(&answer)?;
    let document = answer.get("didDocument").cloned().unwrap_or(Value::Null);
    let metadata = answer.get("didDocumentMetadata").unwrap_or(&Value::Null);
    proof.verify_for(genesis, did, did_dojang::VersionSelector::Latest, &document, metadata)?;
    Ok(document)
}
