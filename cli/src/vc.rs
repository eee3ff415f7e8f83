//! `dojang vc issue | verify | present | status | list-create` and `dojang vp verify`
//! (`specs/credentials.md` §9).
//!
//! `vc verify` checks a credential here, trusting only the genesis file: the issuer's
//! did:dojang document comes with its operations proven against a quorum checkpoint, the
//! registry with every change proven, and each status bit with its status proof. `--save`
//! writes those proofs to a bundle that `--offline --bundle` checks again with no node.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use dojang_core::did_dojang::{VersionSelector, format_rfc3339_ms};
use dojang_core::did_proof::{DidProof, EntryProof};
use dojang_core::genesis::Genesis;
use dojang_core::registry::{Registry, RegistryChange};
use dojang_core::vc::status_list::{StatusProof, verify_status};
use dojang_core::vc::suite::Cryptosuite;
use dojang_core::vc::verify::{Environment, StatusAnswer, VerificationResult, verify_credential};
use dojang_core::vc::{parse_document, presentation};
use dojang_node::keyfile::KeyFile;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::{client, emit, load_genesis};

#[derive(Debug, clap::Subcommand)]
pub enum VcCmd {
    /// Issue a credential: by the agency's node (POST /credentials/issue with the operator
    /// token), or locally with --key.
    Issue {
        /// Unsigned credential (JSON file).
        #[arg(long)]
        credential: PathBuf,
        #[arg(long, default_value = "http://127.0.0.1:7300")]
        node: String,
        /// File holding the operator bearer token (node issuing).
        #[arg(long, conflicts_with = "key")]
        token_file: Option<PathBuf>,
        /// Sign locally with this key file instead of asking the node.
        #[arg(long)]
        key: Option<PathBuf>,
        /// Verification method for local signing (default: the key's did:key key id).
        #[arg(long, requires = "key")]
        verification_method: Option<String>,
        /// eddsa-jcs-2022 (default) or eddsa-rdfc-2022.
        #[arg(long, default_value = "eddsa-jcs-2022")]
        cryptosuite: String,
        /// Where to write the signed credential (default: stdout).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Verify a credential here against the genesis file, with proofs from a node (or a
    /// saved bundle with --offline).
    Verify {
        /// The credential (JSON file).
        #[arg(long)]
        file: PathBuf,
        #[arg(long, default_value = "http://127.0.0.1:7300")]
        node: String,
        /// The trust anchor; default: the node's genesis (not a trust anchor).
        #[arg(long)]
        genesis: Option<PathBuf>,
        /// Verification time (xsd:dateTime); default: now.
        #[arg(long)]
        at: Option<String>,
        /// Write the proofs used (DID answers, registry, status) to this bundle.
        #[arg(long)]
        save: Option<PathBuf>,
        /// Use only a saved bundle and the genesis file: no node.
        #[arg(long, requires_all = ["bundle", "genesis"])]
        offline: bool,
        #[arg(long)]
        bundle: Option<PathBuf>,
        /// Ask the node's POST /credentials/verify instead (its word, not proofs).
        #[arg(long, conflicts_with_all = ["offline", "save"])]
        remote: bool,
    },
    /// Present credentials: a holder-signed presentation bound to a challenge and domain.
    Present {
        /// Holder key file (its did:key is the holder unless --holder is given).
        #[arg(long)]
        key: PathBuf,
        /// Credential files (repeat).
        #[arg(long = "credential", required = true)]
        credentials: Vec<PathBuf>,
        #[arg(long)]
        holder: Option<String>,
        #[arg(long)]
        verification_method: Option<String>,
        /// The verifier's challenge; without it one is requested from --node.
        #[arg(long)]
        challenge: Option<String>,
        #[arg(long)]
        domain: String,
        #[arg(long, default_value = "http://127.0.0.1:7300")]
        node: String,
        #[arg(long, default_value = "eddsa-jcs-2022")]
        cryptosuite: String,
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Revoke or suspend (--set) or reinstate (--clear) one status bit, by the node's issuer.
    Status {
        #[arg(long, default_value = "http://127.0.0.1:7300")]
        node: String,
        #[arg(long)]
        token_file: PathBuf,
        #[arg(long)]
        list: String,
        #[arg(long)]
        index: u64,
        /// Clear the bit instead of setting it (suspension lists only).
        #[arg(long)]
        clear: bool,
    },
    /// Create a status list of the node's issuer.
    ListCreate {
        #[arg(long, default_value = "http://127.0.0.1:7300")]
        node: String,
        #[arg(long)]
        token_file: PathBuf,
        #[arg(long)]
        id: String,
        /// revocation or suspension.
        #[arg(long)]
        purpose: String,
        #[arg(long)]
        credential_type: String,
        #[arg(long, default_value_t = 131_072)]
        size: u64,
    },
}

#[derive(Debug, clap::Subcommand)]
pub enum VpCmd {
    /// Verify a presentation with the node's POST /presentations/verify (with replay
    /// protection), or here with --local.
    Verify {
        #[arg(long)]
        file: PathBuf,
        #[arg(long, default_value = "http://127.0.0.1:7300")]
        node: String,
        #[arg(long)]
        challenge: String,
        #[arg(long)]
        domain: String,
        /// Verify here against the genesis file with proofs from the node (no replay memory).
        #[arg(long)]
        local: bool,
        #[arg(long)]
        genesis: Option<PathBuf>,
    },
}

fn read_json(path: &Path) -> anyhow::Result<Value> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    parse_document(&bytes).with_context(|| format!("{}", path.display()))
}

fn token(path: &Path) -> anyhow::Result<String> {
    Ok(std::fs::read_to_string(path).with_context(|| format!("cannot read token file {}", path.display()))?.trim().to_owned())
}

fn suite(name: &str) -> anyhow::Result<Cryptosuite> {
    Cryptosuite::from_name(name).with_context(|| format!("unknown cryptosuite {name:?}: eddsa-jcs-2022 or eddsa-rdfc-2022"))
}

fn write_out(out: Option<&Path>, v: &Value) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(v)?;
    match out {
        Some(p) => std::fs::write(p, text + "\n").with_context(|| format!("cannot write {}", p.display())),
        None => {
            emit(true, v.clone(), String::new);
            Ok(())
        }
    }
}

/// The proofs a verification used, saved for offline re-verification.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VcBundle {
    /// `/v1/registry` answer: `{checkpoint, changes}`.
    pub registry: Option<Value>,
    /// did and versionTime (ms) -> the resolution answer with its dojangProof.
    pub dids: BTreeMap<String, Value>,
    /// `list#index` -> status proof.
    pub status: BTreeMap<String, StatusProof>,
}

/// A verifier environment whose every answer is proven against the genesis file.
struct ProvenEnv {
    genesis: Genesis,
    node: Option<String>,
    registry: Registry,
    bundle: RefCell<VcBundle>,
}

fn registry_from(genesis: &Genesis, answer: &Value) -> anyhow::Result<Registry> {
    let proofs: Vec<EntryProof> =
        serde_json::from_value(answer.get("changes").cloned().unwrap_or_default()).context("registry answer without change proofs")?;
    let cp = answer.get("checkpoint").and_then(Value::as_str).context("registry answer without checkpoint")?;
    let (_, entries) = dojang_core::bundle::verify_entries(genesis, cp, &proofs)?;
    let changes = entries.iter().map(|(i, e)| Ok((*i, RegistryChange::from_entry(e)?))).collect::<anyhow::Result<Vec<_>>>()?;
    Ok(dojang_core::registry::replay(genesis, &changes)?)
}

impl ProvenEnv {
    fn online(genesis: Genesis, node: &str) -> anyhow::Result<ProvenEnv> {
        let answer: Value = serde_json::from_str(&client::get_text(node, "/v1/registry")?).context("the registry answer is not json")?;
        let registry = registry_from(&genesis, &answer).context("the registry proof does not verify")?;
        let saved = json!({ "checkpoint": answer.get("checkpoint"), "changes": answer.get("changes") });
        Ok(ProvenEnv {
            genesis,
            node: Some(node.to_owned()),
            registry,
            bundle: RefCell::new(VcBundle { registry: Some(saved), ..Default::default() }),
        })
    }

    fn offline(genesis: Genesis, bundle: VcBundle) -> anyhow::Result<ProvenEnv> {
        let registry = match &bundle.registry {
            Some(a) => registry_from(&genesis, a).context("the bundle's registry proof does not verify")?,
            None => Registry::from_genesis(&genesis),
        };
        Ok(ProvenEnv { genesis, node: None, registry, bundle: RefCell::new(bundle) })
    }
}

impl Environment for ProvenEnv {
    fn resolve(&self, did: &str, at_ms: Option<u64>) -> Result<Value, String> {
        // versionTime has seconds precision (specs/did-method-dojang.md §6.5).
        let at = at_ms.map(|t| t / 1000 * 1000);
        let key = format!("{did}@{}", at.map(|t| t.to_string()).unwrap_or_default());
        let cached = self.bundle.borrow().dids.get(&key).cloned();
        let answer = match (cached, &self.node) {
            (Some(a), _) => a,
            (None, Some(node)) => {
                let q = at.map(|t| format!("?versionTime={}", format_rfc3339_ms(t))).unwrap_or_default();
                let text = client::get_text_any_status(node, &format!("/1.0/identifiers/{did}{q}")).map_err(|e| e.to_string())?;
                serde_json::from_str(&text).map_err(|e| e.to_string())?
            }
            (None, None) => return Err(format!("the bundle has no resolution of {did}")),
        };
        if let Some(err) = answer.pointer("/didResolutionMetadata/error") {
            return Err(err.get("detail").and_then(Value::as_str).map(str::to_owned).unwrap_or_else(|| err.to_string()));
        }
        let proof: DidProof = answer
            .pointer("/didResolutionMetadata/dojangProof")
            .cloned()
            .ok_or("the answer has no dojangProof")
            .and_then(|p| serde_json::from_value(p).map_err(|_| "the dojangProof is malformed"))?;
        let doc = answer.get("didDocument").cloned().unwrap_or_default();
        let meta = answer.get("didDocumentMetadata").cloned().unwrap_or_default();
        let sel = at.map(VersionSelector::VersionTime).unwrap_or(VersionSelector::Latest);
        proof.verify_for(&self.genesis, did, sel, &doc, &meta).map_err(|e| format!("the resolution proof does not verify: {e}"))?;
        self.bundle.borrow_mut().dids.insert(key, answer);
        Ok(doc)
    }

    fn registry(&self) -> Result<&Registry, String> {
        Ok(&self.registry)
    }

    fn status(&self, list: &str, index: u64) -> Result<StatusAnswer, String> {
        let key = format!("{list}#{index}");
        let cached = self.bundle.borrow().status.get(&key).cloned();
        let proof = match (cached, &self.node) {
            (Some(p), _) => p,
            (None, Some(node)) => {
                let text = client::get_text(node, &format!("/v1/status-lists/{list}/{index}")).map_err(|e| e.to_string())?;
                let v: Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
                serde_json::from_value(v.get("proof").cloned().unwrap_or_default()).map_err(|e| format!("malformed status proof: {e}"))?
            }
            (None, None) => return Err(format!("the bundle has no status proof for {key}")),
        };
        if proof.list != list || proof.index != index {
            return Err("the status proof is about another bit".into());
        }
        let v = verify_status(&self.genesis, &proof).map_err(|e| e.to_string())?;
        self.bundle.borrow_mut().status.insert(key, proof);
        Ok(StatusAnswer {
            issuer: v.issuer,
            purpose: v.purpose,
            bit: v.bit,
            source: format!("proven: update {} at index {}, checkpoint size {}", v.sequence, v.latest_index, v.checkpoint.checkpoint.size),
        })
    }
}

fn print_result(json: bool, r: &VerificationResult) -> anyhow::Result<()> {
    emit(json, serde_json::to_value(r)?, || {
        let mut lines = vec![if r.verified { "VERIFIED".to_owned() } else { "NOT VERIFIED".to_owned() }];
        for c in &r.checks {
            let status = serde_json::to_value(c.status).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
            lines.push(format!("  {:<14} {:<7} {}", c.check, status, c.detail.clone().unwrap_or_default()));
        }
        for (i, cr) in r.credentials.iter().enumerate() {
            lines.push(format!("  credential {i}: {}", if cr.verified { "verified" } else { "not verified" }));
        }
        lines.join("\n")
    });
    if r.verified { Ok(()) } else { bail!("verification failed: {}", r.failed().join(", ")) }
}

fn now_or(at: Option<&str>) -> anyhow::Result<u64> {
    match at {
        None => Ok(crate::devnet::now_ms()),
        Some(t) => dojang_core::did_dojang::parse_rfc3339(t).with_context(|| format!("--at {t:?} is not an xsd:dateTime")),
    }
}

fn genesis_for(node: &str, genesis: Option<&Path>) -> anyhow::Result<Genesis> {
    match genesis {
        Some(p) => load_genesis(p),
        None => Genesis::from_json(client::get_text(node, "/v1/genesis")?.as_bytes()).context("the node's genesis is invalid"),
    }
}

pub fn run_vc(cmd: VcCmd, json: bool) -> anyhow::Result<()> {
    match cmd {
        VcCmd::Issue { credential, node, token_file, key, verification_method, cryptosuite, out } => {
            let unsigned = read_json(&credential)?;
            let signed = match (key, token_file) {
                (Some(k), _) => {
                    let (kf, sk) = KeyFile::load(&k)?;
                    let vm = verification_method.unwrap_or(kf.key_id);
                    let created = dojang_core::vc::created_at(crate::devnet::now_ms());
                    dojang_core::vc::verify::issue_credential(&unsigned, &sk, &vm, suite(&cryptosuite)?, &created)?
                }
                (None, Some(t)) => {
                    let body = json!({ "credential": unsigned, "options": { "cryptosuite": cryptosuite } });
                    let answer = client::post_json_auth(&node, "/credentials/issue", &body, Some(&token(&t)?))?;
                    answer.get("verifiableCredential").cloned().context("the node's answer has no verifiableCredential")?
                }
                (None, None) => bail!("give --token-file (issue by the node) or --key (sign locally)"),
            };
            write_out(out.as_deref(), &signed)?;
        }
        VcCmd::Verify { file, node, genesis, at, save, offline, bundle, remote } => {
            let vc = read_json(&file)?;
            let now = now_or(at.as_deref())?;
            if remote {
                let body = match &at {
                    Some(a) => json!({ "verifiableCredential": vc, "options": { "at": a } }),
                    None => json!({ "verifiableCredential": vc }),
                };
                let answer = client::post_json_auth(&node, "/credentials/verify", &body, None)?;
                return print_value_result(json, &answer);
            }
            let env = if offline {
                let g = load_genesis(genesis.as_deref().context("--offline needs --genesis")?)?;
                let b = bundle.context("--offline needs --bundle")?;
                let text = std::fs::read_to_string(&b).with_context(|| format!("cannot read {}", b.display()))?;
                ProvenEnv::offline(g, serde_json::from_str(&text).context("the bundle is malformed")?)?
            } else {
                ProvenEnv::online(genesis_for(&node, genesis.as_deref())?, &node)?
            };
            let r = verify_credential(&vc, &env, now);
            if let Some(p) = save {
                std::fs::write(&p, serde_json::to_string_pretty(&*env.bundle.borrow())?)
                    .with_context(|| format!("cannot write {}", p.display()))?;
            }
            print_result(json, &r)?;
        }
        VcCmd::Present { key, credentials, holder, verification_method, challenge, domain, node, cryptosuite, out } => {
            let (kf, sk) = KeyFile::load(&key)?;
            let holder = holder.unwrap_or(kf.did.clone());
            let vm = verification_method.unwrap_or_else(|| if holder == kf.did { kf.key_id.clone() } else { format!("{holder}#key-1") });
            let creds = credentials.iter().map(|p| read_json(p)).collect::<anyhow::Result<Vec<_>>>()?;
            let challenge = match challenge {
                Some(c) => c,
                None => {
                    let a = client::post_json_auth(&node, "/presentations/challenge", &json!({ "domain": domain }), None)?;
                    a.get("challenge").and_then(Value::as_str).context("the node sent no challenge")?.to_owned()
                }
            };
            let created = dojang_core::vc::created_at(crate::devnet::now_ms());
            let vp = presentation::present(&holder, &creds, &sk, &vm, &challenge, &domain, &created, suite(&cryptosuite)?)?;
            write_out(out.as_deref(), &vp)?;
        }
        VcCmd::Status { node, token_file, list, index, clear } => {
            let body = json!({ "statusListCredential": list, "statusListIndex": index.to_string(), "status": !clear });
            let a = client::post_json_auth(&node, "/credentials/status", &body, Some(&token(&token_file)?))?;
            emit(json, a.clone(), || {
                format!(
                    "bit {index} of {list} {} (ledger index {})",
                    if clear { "cleared" } else { "set" },
                    a.pointer("/receipt/index").unwrap_or(&Value::Null)
                )
            });
        }
        VcCmd::ListCreate { node, token_file, id, purpose, credential_type, size } => {
            let body = json!({ "id": id, "purpose": purpose, "credentialType": credential_type, "size": size });
            let a = client::post_json_auth(&node, "/v1/status-lists", &body, Some(&token(&token_file)?))?;
            emit(json, a.clone(), || format!("created {purpose} list {id} of {size} bits"));
        }
    }
    Ok(())
}

pub fn run_vp(cmd: VpCmd, json: bool) -> anyhow::Result<()> {
    let VpCmd::Verify { file, node, challenge, domain, local, genesis } = cmd;
    let vp = read_json(&file)?;
    if local {
        let env = ProvenEnv::online(genesis_for(&node, genesis.as_deref())?, &node)?;
        let r = presentation::verify_presentation(&vp, &env, crate::devnet::now_ms(), &presentation::Expected { challenge, domain });
        return print_result(json, &r);
    }
    let body = json!({ "verifiablePresentation": vp, "options": { "challenge": challenge, "domain": domain } });
    let answer = client::post_json_auth(&node, "/presentations/verify", &body, None)?;
    print_value_result(json, &answer)
}

/// Prints a node's verification result (JSON) like [`print_result`].
fn print_value_result(json: bool, r: &Value) -> anyhow::Result<()> {
    emit(json, r.clone(), || {
        let mut lines = vec![if r.get("verified") == Some(&Value::Bool(true)) { "VERIFIED".to_owned() } else { "NOT VERIFIED".to_owned() }];
        for c in r.get("checks").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default() {
            let s = |k: &str| c.get(k).and_then(Value::as_str).unwrap_or_default().to_owned();
            lines.push(format!("  {:<14} {:<7} {}", s("check"), s("status"), s("detail")));
        }
        lines.join("\n")
    });
    if r.get("verified") == Some(&Value::Bool(true)) {
        Ok(())
    } else {
        let failed: Vec<&str> = r
            .get("checks")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter(|c| c.get("status").and_then(Value::as_str) == Some("failed"))
                    .filter_map(|c| c.get("check").and_then(Value::as_str))
                    .collect()
            })
            .unwrap_or_default();
        bail!("verification failed: {}", failed.join(", "))
    }
}
