//! The node's credential service (`specs/credentials.md` §8): the agency's configured
//! issuer key and operator token, issuing, status-list updates signed by that key and
//! submitted through the write path, the verifier [`Environment`] over the ledger, and
//! the presentation challenge memory that refuses replays. The HTTP layer
//! (`api/vc.rs`) only parses and maps errors.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use dojang_core::did_dojang::VersionSelector;
use dojang_core::did_key::DidKey;
use dojang_core::entry::{Kind, UnsignedEntry};
use dojang_core::registry::Registry;
use dojang_core::vc::presentation::{self, Expected};
use dojang_core::vc::status_list::{self, ListCreation, StatusListUpdate, StatusPurpose};
use dojang_core::vc::suite::Cryptosuite;
use dojang_core::vc::verify::{self, Environment, StatusAnswer, VerificationResult};
use dojang_core::vc::{VcError, did_of};
use ed25519_dalek::SigningKey;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

use crate::clock::Clock;
use crate::keyfile::KeyFile;
use crate::ledger::{Ledger, LedgerError};
use crate::writepath::WritePath;

/// `[credentials]` in the node config (`specs/api.md` §1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CredentialsConfig {
    /// Key file of the agency's issuer key (`dojang key new`). Its did:key key id must be
    /// one of the issuer's `keys` in the registry for status-list updates to apply.
    pub issuer_key: PathBuf,
    /// The issuer DID written in credentials; default: the key's did:key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer_did: Option<String>,
    /// The verification method credentials name; default: the did:key key id, or
    /// `<issuer_did>#key-1` for another issuer DID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification_method: Option<String>,
    /// File holding the operator's bearer token for `POST /credentials/issue` and the
    /// status endpoints (at least 32 characters; surrounding whitespace ignored).
    pub api_token_file: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    #[error("this node has no issuer configured ([credentials] in its config)")]
    NotConfigured,
    #[error("missing or wrong bearer token")]
    Unauthorized,
    #[error(transparent)]
    Vc(#[from] VcError),
    #[error("{0}")]
    BadRequest(String),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error("the status-list update was refused: {0}")]
    Refused(dojang_core::admission::AdmissionError),
    #[error("submission failed: {0}")]
    Submit(String),
    /// This node is a read replica; the message names the validators (`specs/api.md` §1.2).
    #[error("{0}")]
    ReadReplica(String),
    #[error("unknown challenge: it was not issued by this node, has expired, or was already used")]
    UnknownChallenge,
    #[error("cannot load [credentials]: {0}")]
    Config(String),
}

impl CredentialError {
    pub fn slug(&self) -> &'static str {
        match self {
            CredentialError::NotConfigured => "issuing-not-configured",
            CredentialError::Unauthorized => "unauthenticated",
            CredentialError::Vc(e) => e.slug(),
            CredentialError::BadRequest(_) => "bad-request",
            CredentialError::Ledger(_) => "internal",
            CredentialError::Refused(e) => e.slug(),
            CredentialError::Submit(_) => "submission-failed",
            CredentialError::ReadReplica(_) => "read-replica",
            CredentialError::UnknownChallenge => "vp-unknown-challenge",
            CredentialError::Config(_) => "internal",
        }
    }
}

/// The loaded issuer: key, DID, verification method and the token's hash.
struct Issuer {
    key: SigningKey,
    key_id: String,
    did: String,
    vm: String,
    token_hash: [u8; 32],
}

impl std::fmt::Debug for Issuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issuer").field("did", &self.did).field("vm", &self.vm).finish_non_exhaustive()
    }
}

/// A challenge issued by this node (§7.3).
#[derive(Debug, Clone)]
struct Challenge {
    domain: Option<String>,
    expires_ms: u64,
}

/// How long a node-issued challenge stays valid, and how long a verifier-supplied one is
/// remembered after use (and how far a presentation's `created` may be from the clock).
pub const CHALLENGE_TTL_MS: u64 = 10 * 60 * 1000;
const MAX_CHALLENGES: usize = 1_000_000;

#[derive(Debug)]
pub struct CredentialService {
    ledger: Arc<Ledger>,
    write: Arc<WritePath>,
    clock: Arc<dyn Clock>,
    issuer: Option<Issuer>,
    issued: Mutex<HashMap<String, Challenge>>,
    used: Mutex<HashMap<String, u64>>,
    /// Status updates are computed from the list's current root: one at a time.
    status_lock: tokio::sync::Mutex<()>,
}

fn token_hash(t: &str) -> [u8; 32] {
    Sha256::digest(t.trim().as_bytes()).into()
}

impl CredentialService {
    pub fn new(
        ledger: Arc<Ledger>,
        write: Arc<WritePath>,
        clock: Arc<dyn Clock>,
        cfg: Option<&CredentialsConfig>,
    ) -> Result<Self, CredentialError> {
        let issuer = match cfg {
            None => None,
            Some(c) => {
                let (kf, key) = KeyFile::load(&c.issuer_key).map_err(|e| CredentialError::Config(e.to_string()))?;
                let token = std::fs::read_to_string(&c.api_token_file)
                    .map_err(|e| CredentialError::Config(format!("cannot read {}: {e}", c.api_token_file.display())))?;
                if token.trim().len() < 32 {
                    return Err(CredentialError::Config(format!(
                        "{}: the token must be at least 32 characters",
                        c.api_token_file.display()
                    )));
                }
                let did = c.issuer_did.clone().unwrap_or_else(|| kf.did.clone());
                let vm =
                    c.verification_method.clone().unwrap_or_else(|| if did == kf.did { kf.key_id.clone() } else { format!("{did}#key-1") });
                if did_of(&vm) != did {
                    return Err(CredentialError::Config(format!("verification_method {vm} is not a method of {did}")));
                }
                Some(Issuer { key, key_id: kf.key_id, did, vm, token_hash: token_hash(&token) })
            }
        };
        Ok(CredentialService {
            ledger,
            write,
            clock,
            issuer,
            issued: Mutex::default(),
            used: Mutex::default(),
            status_lock: tokio::sync::Mutex::new(()),
        })
    }

    /// Checks the `Authorization: Bearer …` value in constant time (§8.1).
    pub fn authenticate(&self, authorization: Option<&str>) -> Result<(), CredentialError> {
        let issuer = self.issuer.as_ref().ok_or(CredentialError::NotConfigured)?;
        let given = authorization.and_then(|a| a.strip_prefix("Bearer ")).unwrap_or_default();
        if bool::from(token_hash(given).ct_eq(&issuer.token_hash)) && !given.trim().is_empty() {
            Ok(())
        } else {
            Err(CredentialError::Unauthorized)
        }
    }

    /// The configured issuer's DID and verification method.
    pub fn issuer(&self) -> Option<(&str, &str)> {
        self.issuer.as_ref().map(|i| (i.did.as_str(), i.vm.as_str()))
    }

    /// `POST /credentials/issue` (§8.2): fills in `issuer` if absent, then signs.
    pub fn issue(&self, mut credential: Value, cryptosuite: Option<&str>) -> Result<Value, CredentialError> {
        let issuer = self.issuer.as_ref().ok_or(CredentialError::NotConfigured)?;
        let suite = match cryptosuite {
            None => Cryptosuite::EddsaJcs2022,
            Some(s) => Cryptosuite::from_name(s).ok_or_else(|| CredentialError::Vc(VcError::Cryptosuite(s.chars().take(64).collect())))?,
        };
        if let Value::Object(m) = &mut credential
            && !m.contains_key("issuer")
        {
            m.insert("issuer".into(), Value::String(issuer.did.clone()));
        }
        let created = dojang_core::vc::created_at(self.clock.now_ms());
        Ok(verify::issue_credential(&credential, &issuer.key, &issuer.vm, suite, &created)?)
    }

    /// Signs and submits one status-list update by the issuer key.
    async fn submit_update(&self, update: StatusListUpdate) -> Result<crate::ledger::Receipt, CredentialError> {
        let issuer = self.issuer.as_ref().ok_or(CredentialError::NotConfigured)?;
        update.validate().map_err(|e| CredentialError::Refused(e.into()))?;
        let now = self.clock.now_ms();
        let last = self.ledger.last_nonce(&issuer.key_id)?.unwrap_or(0);
        let nonce = last.saturating_add(1).max(now.saturating_mul(1000));
        let entry = UnsignedEntry {
            kind: Kind::StatusListUpdate,
            author: issuer.key_id.clone(),
            nonce,
            timestamp_ms: now,
            payload: update.encode(),
        }
        .sign(&issuer.key, &self.ledger.rules().genesis_hash)
        .map_err(|e| CredentialError::BadRequest(e.to_string()))?
        .encode()
        .map_err(|e| CredentialError::BadRequest(e.to_string()))?;
        let mut results = self.write.submit(vec![entry]).await.map_err(|e| match e {
            crate::sequencer::SequencerError::ReadReplica { .. } => CredentialError::ReadReplica(e.to_string()),
            e => CredentialError::Submit(e.to_string()),
        })?;
        match results.pop() {
            Some(Ok(r)) => Ok(r),
            Some(Err(e)) => Err(CredentialError::Refused(e)),
            None => Err(CredentialError::Submit("no result".into())),
        }
    }

    /// Creates a status list of the configured issuer (§6.2, §8.3).
    pub async fn create_list(
        &self,
        id: &str,
        purpose: StatusPurpose,
        size: u64,
        credential_type: &str,
    ) -> Result<crate::ledger::Receipt, CredentialError> {
        let _guard = self.status_lock.lock().await;
        let len = usize::try_from(size / 8).map_err(|_| CredentialError::BadRequest("size too large".into()))?;
        let bits = vec![0u8; len.min((status_list::MAX_LIST_BITS / 8) as usize)];
        let update = StatusListUpdate {
            list: id.to_owned(),
            sequence: 0,
            create: Some(ListCreation { purpose, size, credential_type: credential_type.to_owned() }),
            set: vec![],
            clear: vec![],
            root: status_list::root(&bits),
        };
        self.submit_update(update).await
    }

    /// Sets (`status` true) or clears one bit of a list of the configured issuer (§8.3).
    pub async fn set_status(&self, id: &str, index: u64, status: bool) -> Result<crate::ledger::Receipt, CredentialError> {
        let _guard = self.status_lock.lock().await;
        let (state, mut bits) =
            crate::status_lists::load(&self.ledger, id)?.ok_or_else(|| CredentialError::BadRequest(format!("no status list {id}")))?;
        if index >= state.size {
            return Err(CredentialError::BadRequest(format!("index {index} is beyond the list's {} bits", state.size)));
        }
        let byte =
            usize::try_from(index / 8).ok().and_then(|i| bits.get_mut(i)).ok_or_else(|| CredentialError::BadRequest("index".into()))?;
        let mask = 0x80u8 >> (index % 8);
        if status {
            *byte |= mask
        } else {
            *byte &= !mask
        }
        let update = StatusListUpdate {
            list: id.to_owned(),
            sequence: state.sequence.saturating_add(1),
            create: None,
            set: if status { vec![index] } else { vec![] },
            clear: if status { vec![] } else { vec![index] },
            root: status_list::root(&bits),
        };
        self.submit_update(update).await
    }

    /// A verifier environment over this node's ledger (§8.4).
    pub fn environment(&self) -> LedgerEnv<'_> {
        LedgerEnv { ledger: &self.ledger, registry: self.ledger.registry() }
    }

    /// `POST /credentials/verify` (§8.4).
    pub fn verify_credential(&self, vc: &Value, now_ms: Option<u64>) -> VerificationResult {
        verify::verify_credential(vc, &self.environment(), now_ms.unwrap_or_else(|| self.clock.now_ms()))
    }

    /// `POST /presentations/challenge` (§7.3): a fresh random challenge, optionally tied to
    /// a domain, valid for [`CHALLENGE_TTL_MS`].
    pub fn new_challenge(&self, domain: Option<String>) -> (String, u64) {
        let mut bytes = [0u8; 16];
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut bytes);
        let challenge = hex::encode(bytes);
        let now = self.clock.now_ms();
        let expires_ms = now.saturating_add(CHALLENGE_TTL_MS);
        let mut map = self.issued.lock().unwrap_or_else(|p| p.into_inner());
        map.retain(|_, c| c.expires_ms > now);
        if map.len() < MAX_CHALLENGES {
            map.insert(challenge.clone(), Challenge { domain, expires_ms });
        }
        (challenge, expires_ms)
    }

    /// `POST /presentations/verify` (§7.3): the presentation's checks, plus `replay`: a
    /// node-issued challenge is consumed on success (its domain must match, if it had one);
    /// a verifier-supplied challenge is accepted once, within [`CHALLENGE_TTL_MS`] of the
    /// proof's `created`, and remembered that long.
    pub fn verify_presentation(
        &self,
        vp: &Value,
        challenge: Option<String>,
        domain: String,
    ) -> Result<VerificationResult, CredentialError> {
        let now = self.clock.now_ms();
        let issued = {
            let map = self.issued.lock().unwrap_or_else(|p| p.into_inner());
            challenge.as_ref().and_then(|c| map.get(c).cloned()).filter(|c| c.expires_ms > now)
        };
        let challenge = match challenge {
            Some(c) => c,
            None => return Err(CredentialError::BadRequest("options.challenge is required".into())),
        };
        if let Some(Challenge { domain: Some(d), .. }) = &issued
            && *d != domain
        {
            return Err(CredentialError::BadRequest(format!("challenge was issued for domain {d:?}, not {domain:?}")));
        }
        let env = self.environment();
        let mut result = presentation::verify_presentation(vp, &env, now, &Expected { challenge: challenge.clone(), domain });
        let created =
            vp.get("proof").and_then(|p| p.get("created")).and_then(Value::as_str).and_then(dojang_core::did_dojang::parse_rfc3339);
        let mut used = self.used.lock().unwrap_or_else(|p| p.into_inner());
        used.retain(|_, until| *until > now);
        if used.contains_key(&challenge) {
            result.fail_check("replay", "vp-replayed", "replayed presentation", format!("challenge {challenge:?} was already used"));
        } else if issued.is_none() && created.is_none_or(|c| c.abs_diff(now) > CHALLENGE_TTL_MS) {
            result.fail_check(
                "replay",
                "vp-stale",
                "presentation outside the replay window",
                "a verifier-supplied challenge needs a proof created within 10 minutes of the node's clock".into(),
            );
        } else {
            result.pass_check("replay", if issued.is_some() { "node-issued challenge" } else { "verifier-supplied challenge, first use" });
            if result.verified && used.len() < MAX_CHALLENGES {
                used.insert(challenge.clone(), now.saturating_add(CHALLENGE_TTL_MS));
                self.issued.lock().unwrap_or_else(|p| p.into_inner()).remove(&challenge);
            }
        }
        Ok(result)
    }
}

/// The verifier environment of a node: DIDs resolved from its ledger (as of a time),
/// its current registry, and status bits from its state.
#[derive(Debug)]
pub struct LedgerEnv<'a> {
    ledger: &'a Ledger,
    registry: Arc<Registry>,
}

impl Environment for LedgerEnv<'_> {
    fn resolve(&self, did: &str, at_ms: Option<u64>) -> Result<Value, String> {
        if !did.starts_with("did:dojang:") {
            return Err(format!("only did:key and did:dojang issuers resolve here, not {}", did.chars().take(64).collect::<String>()));
        }
        let sel = at_ms.map(VersionSelector::VersionTime).unwrap_or(VersionSelector::Latest);
        self.ledger.resolve_did(did, sel).map(|(r, _)| r.document).map_err(|e| e.to_string())
    }
    fn registry(&self) -> Result<&Registry, String> {
        Ok(&self.registry)
    }
    fn status(&self, list: &str, index: u64) -> Result<StatusAnswer, String> {
        let (state, bits) =
            crate::status_lists::load(self.ledger, list).map_err(|e| e.to_string())?.ok_or("no such status list on this ledger")?;
        if index >= state.size {
            return Err(format!("index {index} is beyond the list's {} bits", state.size));
        }
        Ok(StatusAnswer {
            issuer: state.issuer,
            purpose: state.purpose,
            bit: status_list::get_bit(&bits, index),
            source: format!("node state, update {} at ledger index {}", state.sequence, state.latest_index),
        })
    }
}

/// Makes a DID from a key for configs: the did:key key id.
pub fn key_id_of(key: &SigningKey) -> String {
    DidKey::from_verifying_key(&key.verifying_key()).key_id()
}
