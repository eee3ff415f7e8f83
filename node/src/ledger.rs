//! The node's ledger: applies sequenced batches (write-path steps 4-7 of
//! `specs/ledger.md` §6) and answers reads — entries, checkpoints and proof bundles.
//!
//! One writer (the sequencer's committer) calls [`Ledger::apply`]; any number of readers
//! call the read methods concurrently. Readers only ever see what the latest checkpoint
//! covers, because the tree size, nodes and checkpoint are committed in one atomic batch.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};

use dojang_core::admission::{AdmissionError, Candidate, NonceTracker, Rules};
use dojang_core::audit::{self, ChainProof, EventProof, HistoryBundle};
use dojang_core::bundle::{ConsistencyBundle, InclusionBundle};
use dojang_core::checkpoint::{Checkpoint, NoteSignature, SignedCheckpoint};
use dojang_core::did_dojang::{self, DidError, DidOperation, DidState, OpRecord, Resolved, VersionSelector};
use dojang_core::did_proof::{DidProof, EntryProof};
use dojang_core::documents::{self, DocumentProof, DocumentRecord};
use dojang_core::entry::{Entry, Kind};
use dojang_core::hash::Hash;
use dojang_core::merkle::{Blake3Hasher, Frontier, ProofError};
use dojang_core::registry::{self, Registry, RegistryChange};
use dojang_core::sparse_map::{self, MapError, MapNode, MapNodeId};
use ed25519_dalek::SigningKey;
use serde::Serialize;

use crate::access_map::MapStore;
use crate::storage::{
    CheckpointReader, DidReader, EntryReader, IndexReader, LedgerBatch, Put, StateReader, StorageError, Store, Table, TreeReader,
};
use crate::tree::CachedTree;

/// Who signs this node's checkpoints: a genesis validator's id and consensus key.
#[derive(Clone)]
pub struct CheckpointSigner {
    pub id: String,
    pub key: SigningKey,
}

impl std::fmt::Debug for CheckpointSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the key.
        f.debug_struct("CheckpointSigner").field("id", &self.id).finish_non_exhaustive()
    }
}

/// What a submitter gets back for a committed entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Receipt {
    pub index: u64,
    pub leaf_hash: Hash,
    /// The size of the first checkpoint that covers the entry.
    pub tree_size: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Proof(#[from] ProofError),
    #[error("entry index {index} is not below tree size {size}")]
    NoSuchEntry { index: u64, size: u64 },
    #[error("no entry with leaf hash {0}")]
    NoSuchLeaf(Hash),
    #[error("no checkpoint was published at tree size {0}")]
    NoCheckpointAt(u64),
    #[error("tree size {requested} is beyond the current size {current}")]
    SizeTooLarge { requested: u64, current: u64 },
    #[error("consistency needs 0 < from <= to, got from={from} to={to}")]
    BadRange { from: u64, to: u64 },
    #[error(transparent)]
    Tree(#[from] crate::tree::TreeError),
    #[error("stored checkpoint is corrupt: {0}")]
    CorruptCheckpoint(String),
    #[error(transparent)]
    Registry(#[from] dojang_core::registry::RegistryError),
    #[error("stored {what} is corrupt: {reason}")]
    CorruptState { what: &'static str, reason: String },
    #[error("no did {0} on this ledger")]
    NoSuchDid(String),
    #[error(transparent)]
    Did(#[from] DidError),
    #[error("stored state of {did} is corrupt: {reason}")]
    CorruptDid { did: String, reason: String },
    #[error("validator {0:?} is not in the genesis validator set, or its key does not match")]
    NotAValidator(String),
    #[error("read replica name {0:?} is a genesis validator id: a replica needs a name of its own")]
    ReplicaIsValidator(String),
    #[error("access map: {0}")]
    Map(#[from] MapError),
    #[error("a batch prepared at tree size {prepared} cannot commit at tree size {current}")]
    StalePrepared { prepared: u64, current: u64 },
    #[error("the grant for writer {writer:?} covers {slots} slots and every one holds an event: ask again with a larger range")]
    GrantExhausted { writer: String, slots: usize },
}

/// Access events committed by one batch, for live subscribers (`specs/access-log.md` §16.4).
#[derive(Debug, Clone)]
pub struct AccessCommit {
    /// (tag, leaf index) of each new event.
    pub events: Vec<([u8; 32], u64)>,
    pub tree_size: u64,
}

/// One chain of a history request: a writer key and the tags of its slots from `start`,
/// in slot order, derived by the caller from the subject's grant.
#[derive(Debug, Clone)]
pub struct ChainRequest {
    pub writer: String,
    pub start: u32,
    pub tags: Vec<[u8; 32]>,
}

struct State {
    frontier: Frontier,
    latest: SignedCheckpoint,
    /// Last committed nonce per author, read through from the store on a miss; only the
    /// committer touches it. Cleared when it grows past `NONCE_CACHE_MAX`.
    nonces: HashMap<String, u64>,
    /// The access-map root the latest checkpoint carries.
    map_root: Hash,
}

const NONCE_CACHE_MAX: usize = 1 << 20;

const REGISTRY_STATE: &[u8] = b"state";

/// Holder-index key prefix: the pseudonym's bytes when it is hex, else its BLAKE3.
fn holder_key(holder: &str) -> Vec<u8> {
    match hex::decode(holder) {
        Ok(b) if b.len() == 32 => b,
        _ => blake3::hash(holder.as_bytes()).as_bytes().to_vec(),
    }
}
const REGISTRY_CHANGES: &[u8] = b"changes";

/// Auditor-index key: 8 bytes of BLAKE3(auditor key id), then the leaf index, so one
/// auditor's events sort together in ledger order.
fn auditor_prefix(kid: &str) -> [u8; 8] {
    let h = blake3::hash(kid.as_bytes());
    let mut p = [0u8; 8];
    p.copy_from_slice(h.as_bytes().get(..8).unwrap_or(&[0u8; 8]));
    p
}

fn auditor_key(kid: &str, index: u64) -> Vec<u8> {
    [&auditor_prefix(kid)[..], &index.to_be_bytes()[..]].concat()
}

/// A batch run against the committed state with every write staged, not yet written
/// ([`Ledger::prepare`]); `checkpoint` is None when no entry was accepted.
pub struct Prepared {
    base_size: u64,
    base_map_root: Hash,
    out: Vec<Result<Receipt, AdmissionError>>,
    staged: Option<StagedBatch>,
    /// The body of the checkpoint this batch yields; validators sign it.
    pub checkpoint: Option<Checkpoint>,
}

impl std::fmt::Debug for Prepared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prepared").field("base_size", &self.base_size).field("entries", &self.out.len()).finish_non_exhaustive()
    }
}

impl Prepared {
    /// Per-candidate results as they will be once committed (tree sizes not yet filled).
    pub fn results(&self) -> &[Result<Receipt, AdmissionError>] {
        &self.out
    }
}

struct StagedBatch {
    lb: LedgerBatch,
    frontier: Frontier,
    new_registry: Option<Registry>,
    map_root: Hash,
    map_writes: Vec<(MapNodeId, Option<MapNode>)>,
    access: Vec<([u8; 32], u64)>,
}

/// State changed by the entries of one batch, so later entries see earlier ones.
#[derive(Default)]
struct BatchState {
    dids: HashMap<String, DidState>,
    registry: Option<Registry>,
    registry_changes: Vec<u64>,
    documents: HashMap<Hash, DocumentRecord>,
    new_holders: Vec<(String, Hash)>,
    /// Access events of the batch: (tag, map value, leaf index), and their auditor seals.
    access: Vec<([u8; 32], Hash, u64)>,
    access_tags: HashSet<[u8; 32]>,
    auditor_events: Vec<(String, u64)>,
    status_lists: crate::status_lists::Staged,
}

/// The ledger of one node.
pub struct Ledger {
    store: Store,
    rules: Arc<Rules>,
    signer: CheckpointSigner,
    state: Mutex<State>,
    /// The current trusted-issuer registry (small; persisted in the `registry` table).
    registry: RwLock<Arc<Registry>>,
    tree: CachedTree,
    /// The latest checkpoint text, for readers, swapped after each commit.
    latest_text: RwLock<Arc<(u64, String)>>,
    /// The access map's stored nodes and cached upper levels.
    map: MapStore,
    /// Held for reading while a proof spans the map and the latest checkpoint, and for
    /// writing from the durable commit until the cache and checkpoint are swapped: the map
    /// is updated in place, so a reader must never see half a batch.
    map_lock: RwLock<()>,
    access_events: tokio::sync::broadcast::Sender<Arc<AccessCommit>>,
}

impl std::fmt::Debug for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ledger").field("signer", &self.signer).finish_non_exhaustive()
    }
}

impl Ledger {
    /// Opens the ledger over `store`, recovering the tree frontier from stored nodes.
    /// An empty ledger publishes a checkpoint of size 0 so readers always have one.
    pub fn open(store: Store, rules: Arc<Rules>, signer: CheckpointSigner, now_ms: u64) -> Result<Self, LedgerError> {
        let v = rules.genesis.validators.iter().find(|v| v.id == signer.id).ok_or_else(|| LedgerError::NotAValidator(signer.id.clone()))?;
        if v.consensus_verifying_key() != Some(signer.key.verifying_key()) {
            return Err(LedgerError::NotAValidator(signer.id.clone()));
        }
        Self::open_unchecked(store, rules, signer, now_ms)
    }

    /// Opens the ledger of a read replica (`specs/consensus.md` §10). Its `signer` is the
    /// replica's own name and key, not a validator's: it signs auth tokens and the size-0
    /// checkpoint only, and verifiers skip that line (the name is not in genesis). Every
    /// later checkpoint carries exactly the validators' signatures the replica verified.
    pub fn open_follower(store: Store, rules: Arc<Rules>, signer: CheckpointSigner, now_ms: u64) -> Result<Self, LedgerError> {
        if rules.genesis.validators.iter().any(|v| v.id == signer.id) {
            return Err(LedgerError::ReplicaIsValidator(signer.id.clone()));
        }
        Self::open_unchecked(store, rules, signer, now_ms)
    }

    fn open_unchecked(store: Store, rules: Arc<Rules>, signer: CheckpointSigner, now_ms: u64) -> Result<Self, LedgerError> {
        let size = store.tree_size()?;
        let frontier = Frontier::from_source(&store, size)?;
        let map = MapStore::load(store.clone())?;
        let map_root = sparse_map::root(&map)?;
        let latest = match store.latest_checkpoint()? {
            Some(text) => SignedCheckpoint::parse(&text).map_err(|e| LedgerError::CorruptCheckpoint(e.to_string()))?,
            None => {
                let cp = Self::make_checkpoint(&rules, &signer, &frontier, &map_root, now_ms);
                store.commit(LedgerBatch { checkpoint: cp.to_text(), ..Default::default() })?;
                cp
            }
        };
        if latest.checkpoint.size != size || latest.checkpoint.root != frontier.root::<Blake3Hasher>() {
            return Err(LedgerError::CorruptCheckpoint(format!(
                "latest checkpoint (size {}) does not match the stored tree (size {size})",
                latest.checkpoint.size
            )));
        }
        let latest_text = RwLock::new(Arc::new((size, latest.to_text())));
        let tree = CachedTree::load(store.clone(), size)?;
        let registry = match store.state(Table::Registry, REGISTRY_STATE)? {
            Some(b) => serde_json::from_slice(&b).map_err(|e| LedgerError::CorruptState { what: "registry", reason: e.to_string() })?,
            None => Registry::from_genesis(&rules.genesis),
        };
        Ok(Ledger {
            store,
            rules,
            signer,
            state: Mutex::new(State { frontier, latest, nonces: HashMap::new(), map_root }),
            registry: RwLock::new(Arc::new(registry)),
            tree,
            latest_text,
            map,
            map_lock: RwLock::new(()),
            access_events: tokio::sync::broadcast::channel(1024).0,
        })
    }

    fn make_checkpoint(rules: &Rules, signer: &CheckpointSigner, frontier: &Frontier, map_root: &Hash, now_ms: u64) -> SignedCheckpoint {
        let mut s = SignedCheckpoint::new(Self::make_checkpoint_body(rules, frontier, map_root, now_ms));
        s.add_signature(s.checkpoint.sign(&signer.id, &signer.key));
        s
    }

    fn make_checkpoint_body(rules: &Rules, frontier: &Frontier, map_root: &Hash, now_ms: u64) -> Checkpoint {
        Checkpoint {
            origin: rules.genesis.origin(),
            size: frontier.size(),
            root: frontier.root::<Blake3Hasher>(),
            genesis_hash: rules.genesis_hash,
            timestamp_ms: now_ms,
            // The access map's root (`specs/access-log.md` §14.3): a quorum signs it with the tree.
            extensions: vec![audit::map_extension(map_root)],
        }
    }

    /// This node's validator id and key: it signs checkpoints and auth tokens.
    pub fn signer(&self) -> &CheckpointSigner {
        &self.signer
    }

    pub fn rules(&self) -> &Arc<Rules> {
        &self.rules
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Write-path steps 4-7 for one ordered batch of candidates whose signatures and
    /// authorisation were already checked: replay check in order, append to the tree,
    /// persist atomically and durably, then publish the new checkpoint signed by this node.
    /// Returns one result per candidate; an Err of the whole call means nothing was
    /// committed. (The one-validator path; under consensus see [`Ledger::prepare`].)
    pub fn apply(&self, batch: Vec<Candidate>, now_ms: u64) -> Result<Vec<Result<Receipt, AdmissionError>>, LedgerError> {
        let prepared = self.prepare(batch, now_ms)?;
        let own = prepared.checkpoint.as_ref().map(|cp| cp.sign(&self.signer.id, &self.signer.key));
        self.commit_prepared(prepared, own.into_iter().collect(), Vec::new())
    }

    /// Steps 4-5 without writing anything: runs the batch against the committed state and
    /// stages every write, so the resulting checkpoint body is known before the batch is
    /// committed. Under consensus each validator prepares a decided block and signs the
    /// body in its vote extension (`specs/consensus.md` §5). `now_ms` is the checkpoint's
    /// time: the block's timestamp under consensus, so every node gets the same body.
    pub fn prepare(&self, batch: Vec<Candidate>, now_ms: u64) -> Result<Prepared, LedgerError> {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let mut frontier = state.frontier.clone();
        let base_size = frontier.size();
        let first_index = base_size;
        let mut nonces = NonceTracker::new();
        let mut out = Vec::with_capacity(batch.len());
        let mut lb = LedgerBatch { first_index, ..Default::default() };
        let mut accepted = Vec::with_capacity(batch.len());
        let mut staged = BatchState::default();
        for c in batch {
            let committed = match (nonces.pending(&c.entry.author), state.nonces.get(&c.entry.author)) {
                (Some(_), _) => None,
                (None, Some(n)) => Some(*n),
                (None, None) => self.store.last_nonce(&c.entry.author)?,
            };
            if let Err(e) = nonces.check(&c.entry, committed) {
                out.push(Err(e));
                continue;
            }
            let index = frontier.size();
            let verdict = match c.entry.kind {
                Kind::DidOperation => self.apply_did_operation(&mut staged.dids, &c, index)?,
                Kind::TrustRegistryChange => self.apply_registry_change(&mut staged, &c, index),
                Kind::DocumentIssuance | Kind::DocumentRevocation => self.apply_document(&mut staged, &c, index)?,
                Kind::AccessEvent => self.apply_access_event(&mut staged, &c, index)?,
                Kind::StatusListUpdate => crate::status_lists::apply(self, &mut staged.status_lists, staged.registry.as_ref(), &c, index)?,
            };
            if let Err(e) = verdict {
                out.push(Err(e));
                continue;
            }
            nonces.record(&c.entry);
            frontier.append::<Blake3Hasher>(c.leaf_hash, &mut lb.nodes);
            out.push(Ok(Receipt { index, leaf_hash: c.leaf_hash, tree_size: 0 }));
            lb.leaf_hashes.push(c.leaf_hash);
            accepted.push(c.encoded);
        }
        let base_map_root = state.map_root;
        if accepted.is_empty() {
            return Ok(Prepared { base_size, base_map_root, out, staged: None, checkpoint: None });
        }
        lb.entries = accepted;
        let new_registry = self.stage_state(&mut staged, &mut lb)?;
        for (did, state) in std::mem::take(&mut staged.dids) {
            let json = serde_json::to_vec(&state).map_err(|e| LedgerError::CorruptDid { did: did.clone(), reason: e.to_string() })?;
            lb.dids.push((did, json));
        }
        lb.dids.sort();
        lb.nonces = nonces.into_updates().into_iter().collect();
        lb.nonces.sort();
        lb.new_size = frontier.size();
        let (map_root, map_writes, access) = self.stage_access(&mut staged, &mut lb, state.map_root)?;
        let cp = Self::make_checkpoint_body(&self.rules, &frontier, &map_root, now_ms);
        Ok(Prepared {
            base_size,
            base_map_root,
            out,
            staged: Some(StagedBatch { lb, frontier, new_registry, map_root, map_writes, access }),
            checkpoint: Some(cp),
        })
    }

    /// Steps 6-7 for a prepared batch: adds `signatures` to its checkpoint, writes the
    /// batch and `extra` in one atomic, synced write, then publishes. `extra` rides along
    /// even when no entry was accepted (consensus stores each decided block with it).
    pub fn commit_prepared(
        &self,
        prepared: Prepared,
        signatures: Vec<NoteSignature>,
        extra: Vec<Put>,
    ) -> Result<Vec<Result<Receipt, AdmissionError>>, LedgerError> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if prepared.base_size != state.frontier.size() || prepared.base_map_root != state.map_root {
            return Err(LedgerError::StalePrepared { prepared: prepared.base_size, current: state.frontier.size() });
        }
        let Prepared { mut out, staged, checkpoint, .. } = prepared;
        let (Some(staged), Some(checkpoint)) = (staged, checkpoint) else {
            if !extra.is_empty() {
                self.store.backend().write(extra)?;
            }
            return Ok(out);
        };
        let StagedBatch { mut lb, frontier, new_registry, map_root, map_writes, access } = staged;
        let mut cp = SignedCheckpoint::new(checkpoint);
        for sig in signatures {
            cp.add_signature(sig);
        }
        lb.checkpoint = cp.to_text();
        lb.extra.extend(extra);
        let text = lb.checkpoint.clone();
        let new_nodes = lb.nodes.clone();
        let nonce_updates = lb.nonces.clone();
        let map_guard = self.map_lock.write().unwrap_or_else(|p| p.into_inner());
        self.store.commit(lb)?;
        self.map.committed(&map_writes);
        // Only after the durable write: memory never runs ahead of the store.
        self.tree.extend(&new_nodes);
        if let Some(r) = new_registry {
            *self.registry.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(r);
        }
        if state.nonces.len() > NONCE_CACHE_MAX {
            state.nonces.clear();
        }
        state.nonces.extend(nonce_updates);
        let size = frontier.size();
        *self.latest_text.write().unwrap_or_else(|p| p.into_inner()) = Arc::new((size, text));
        drop(map_guard);
        state.frontier = frontier;
        state.latest = cp;
        state.map_root = map_root;
        if !access.is_empty() {
            // No subscribers is not an error: the feed is best-effort notification.
            let _ = self.access_events.send(Arc::new(AccessCommit { events: access, tree_size: size }));
        }
        for r in out.iter_mut().flatten() {
            r.tree_size = size;
        }
        Ok(out)
    }

    /// Step 5 for a DID operation (`specs/did-method-dojang.md` §5): check it against the
    /// DID's state — earlier in this batch, else stored — and stage the new state. The
    /// outer error is a storage failure; the inner one refuses this entry only.
    fn apply_did_operation(
        &self,
        pending: &mut HashMap<String, DidState>,
        c: &Candidate,
        index: u64,
    ) -> Result<Result<(), AdmissionError>, LedgerError> {
        let op = match c.did_operation() {
            Ok(op) => op,
            Err(e) => return Ok(Err(e.into())),
        };
        let did = match op.did() {
            Ok(d) => d,
            Err(e) => return Ok(Err(e.into())),
        };
        let prev = match pending.get(&did) {
            Some(s) => Some(s.clone()),
            None => self.did_state(&did)?,
        };
        let record = OpRecord { index, leaf_hash: c.leaf_hash, timestamp_ms: c.entry.timestamp_ms, author: c.entry.author.clone(), op };
        match did_dojang::apply_record(prev, &record) {
            Ok(state) => {
                pending.insert(did, state);
                Ok(Ok(()))
            }
            Err(e) => Ok(Err(e.into())),
        }
    }

    /// Step 5 for an access event (`specs/access-log.md` §14.2): its tag must be new — in
    /// the map and in this batch — so each (writer, subject, slot) holds one event.
    fn apply_access_event(&self, staged: &mut BatchState, c: &Candidate, index: u64) -> Result<Result<(), AdmissionError>, LedgerError> {
        let event = match c.access_event() {
            Ok(e) => e,
            Err(e) => return Ok(Err(e.into())),
        };
        if staged.access_tags.contains(&event.tag) || self.store.state(Table::AccessTags, &event.tag)?.is_some() {
            return Ok(Err(AdmissionError::DuplicateAccessTag { tag: hex::encode(event.tag) }));
        }
        staged.access_tags.insert(event.tag);
        staged.access.push((event.tag, audit::map_value(index, &c.leaf_hash), index));
        staged.auditor_events.extend(event.auditors.iter().map(|a| (a.kid.clone(), index)));
        Ok(Ok(()))
    }

    /// Inserts the batch's access events into the map and stages the node, tag-index and
    /// auditor-index writes. Returns the new root, the node writes (for the cache after
    /// the commit) and (tag, index) of each event (for subscribers).
    #[allow(clippy::type_complexity)]
    fn stage_access(
        &self,
        staged: &mut BatchState,
        lb: &mut LedgerBatch,
        root: Hash,
    ) -> Result<(Hash, Vec<(MapNodeId, Option<MapNode>)>, Vec<([u8; 32], u64)>), LedgerError> {
        if staged.access.is_empty() {
            return Ok((root, Vec::new(), Vec::new()));
        }
        let items: Vec<([u8; 32], Hash)> = staged.access.iter().map(|(t, v, _)| (*t, *v)).collect();
        let update = sparse_map::insert_batch(&self.map, &items)?;
        lb.extra.extend(MapStore::puts(&update.writes)?);
        for (tag, _, index) in &staged.access {
            lb.extra.push(Put { table: Table::AccessTags, key: tag.to_vec(), value: index.to_be_bytes().to_vec() });
        }
        for (kid, index) in staged.auditor_events.drain(..) {
            lb.extra.push(Put { table: Table::AuditorEvents, key: auditor_key(&kid, index), value: Vec::new() });
        }
        let access = staged.access.drain(..).map(|(t, _, i)| (t, i)).collect();
        Ok((update.root, update.writes, access))
    }

    /// Step 5 for a registry change (`specs/documents.md` §2): version, action and quorum
    /// of approvals, against the registry as this batch left it.
    fn apply_registry_change(&self, staged: &mut BatchState, c: &Candidate, index: u64) -> Result<(), AdmissionError> {
        let change = c.registry_change()?;
        let mut r = staged.registry.clone().unwrap_or_else(|| (*self.registry()).clone());
        r.apply(&change, &self.rules.genesis, index)?;
        staged.registry = Some(r);
        staged.registry_changes.push(index);
        Ok(())
    }

    /// Step 5 for document issuance and status changes (`specs/documents.md` §4-5).
    fn apply_document(&self, staged: &mut BatchState, c: &Candidate, index: u64) -> Result<Result<(), AdmissionError>, LedgerError> {
        let current = self.registry();
        let reg: &Registry = staged.registry.as_ref().unwrap_or(&current);
        let genesis = &self.rules.genesis;
        if c.entry.kind == Kind::DocumentIssuance {
            let issuance = match c.issuance() {
                Ok(i) => i,
                Err(e) => return Ok(Err(e.into())),
            };
            let existing = match staged.documents.get(&issuance.commitment) {
                Some(d) => Some(d.clone()),
                None => self.document(&issuance.commitment)?,
            };
            match documents::apply_issuance(existing.as_ref(), reg, &c.entry.author, &issuance, index, c.leaf_hash, c.entry.timestamp_ms) {
                Ok(record) => {
                    if let Some(h) = &issuance.holder {
                        staged.new_holders.push((h.clone(), issuance.commitment));
                    }
                    staged.documents.insert(issuance.commitment, record);
                    Ok(Ok(()))
                }
                Err(e) => Ok(Err(e.into())),
            }
        } else {
            let change = match c.status_change() {
                Ok(ch) => ch,
                Err(e) => return Ok(Err(e.into())),
            };
            let record = match staged.documents.get(&change.document) {
                Some(d) => Some(d.clone()),
                None => self.document(&change.document)?,
            };
            let Some(mut record) = record else {
                return Ok(Err(documents::DocumentError::NotFound { commitment: change.document }.into()));
            };
            match documents::apply_status(&mut record, reg, genesis, &self.rules.genesis_hash, &c.entry.author, &change, index) {
                Ok(()) => {
                    staged.documents.insert(change.document, record);
                    Ok(Ok(()))
                }
                Err(e) => Ok(Err(e.into())),
            }
        }
    }

    /// Turns the batch's registry and document changes into table writes; returns the new
    /// registry, to publish after the commit.
    fn stage_state(&self, staged: &mut BatchState, lb: &mut LedgerBatch) -> Result<Option<Registry>, LedgerError> {
        let corrupt = |what: &'static str| move |e: serde_json::Error| LedgerError::CorruptState { what, reason: e.to_string() };
        let new_registry = staged.registry.take();
        if let Some(r) = &new_registry {
            lb.extra.push(Put {
                table: Table::Registry,
                key: REGISTRY_STATE.to_vec(),
                value: serde_json::to_vec(r).map_err(corrupt("registry"))?,
            });
            let mut changes = self.store.state(Table::Registry, REGISTRY_CHANGES)?.unwrap_or_default();
            for i in &staged.registry_changes {
                changes.extend_from_slice(&i.to_be_bytes());
            }
            lb.extra.push(Put { table: Table::Registry, key: REGISTRY_CHANGES.to_vec(), value: changes });
        }
        for (commitment, record) in staged.documents.drain() {
            lb.extra.push(Put {
                table: Table::Documents,
                key: commitment.0.to_vec(),
                value: serde_json::to_vec(&record).map_err(corrupt("document"))?,
            });
        }
        crate::status_lists::stage(&mut staged.status_lists, lb)?;
        for (holder, commitment) in staged.new_holders.drain(..) {
            let mut key = holder_key(&holder);
            key.extend_from_slice(&commitment.0);
            lb.extra.push(Put { table: Table::Holders, key, value: Vec::new() });
        }
        Ok(new_registry)
    }

    /// The current trusted-issuer registry.
    pub fn registry(&self) -> Arc<Registry> {
        self.registry.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// A document's record, by commitment.
    pub fn document(&self, commitment: &Hash) -> Result<Option<DocumentRecord>, LedgerError> {
        match self.store.state(Table::Documents, &commitment.0)? {
            None => Ok(None),
            Some(b) => {
                serde_json::from_slice(&b).map(Some).map_err(|e| LedgerError::CorruptState { what: "document", reason: e.to_string() })
            }
        }
    }

    /// An entry with its inclusion proof against the tree of `size` leaves.
    pub(crate) fn entry_proof(&self, index: u64, size: u64) -> Result<EntryProof, LedgerError> {
        let bytes = self.store.entry(index)?.ok_or(LedgerError::NoSuchEntry { index, size })?;
        Ok(EntryProof {
            index,
            entry: base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &bytes),
            proof: self.tree.inclusion_proof(index, size)?,
        })
    }

    /// Ledger indices of the registry changes below `size`.
    pub(crate) fn registry_change_indices(&self, size: u64) -> Result<Vec<u64>, LedgerError> {
        let raw = self.store.state(Table::Registry, REGISTRY_CHANGES)?.unwrap_or_default();
        Ok(raw.chunks_exact(8).filter_map(|c| c.try_into().ok().map(u64::from_be_bytes)).filter(|i| *i < size).collect())
    }

    /// The registry as of the published checkpoint at `size` (latest when None), with the
    /// change entries that produce it from genesis, each proven against that checkpoint.
    pub fn registry_at(&self, size: Option<u64>) -> Result<(Registry, SignedCheckpoint, Vec<EntryProof>), LedgerError> {
        let cp = self.checkpoint_for(size)?;
        let size = cp.checkpoint.size;
        let mut changes = Vec::new();
        let mut proofs = Vec::new();
        for index in self.registry_change_indices(size)? {
            let p = self.entry_proof(index, size)?;
            let bytes = self.store.entry(index)?.ok_or(LedgerError::NoSuchEntry { index, size })?;
            let e = Entry::decode(&bytes)
                .map_err(|err| LedgerError::CorruptState { what: "registry change entry", reason: err.to_string() })?;
            changes.push((index, RegistryChange::decode(&e.payload)?));
            proofs.push(p);
        }
        let r = registry::replay(&self.rules.genesis, &changes)?;
        Ok((r, cp, proofs))
    }

    /// A document as of the latest checkpoint: the record, the registry and the proof all
    /// describe the same tree, so the verdict computed from them is the one a verifier
    /// gets from the proof. None when the checkpoint does not cover an issuance.
    pub fn document_at_checkpoint(&self, commitment: &Hash) -> Result<Option<(DocumentRecord, Arc<Registry>, DocumentProof)>, LedgerError> {
        // Checkpoint first: state read afterwards may be newer, and is cut back to it.
        let cp = self.checkpoint_for(None)?;
        let size = cp.checkpoint.size;
        let Some(mut record) = self.document(commitment)? else { return Ok(None) };
        if record.index >= size {
            return Ok(None);
        }
        if record.status_changes.iter().any(|e| e.index >= size) {
            record.status_changes.retain(|e| e.index < size);
            record.status = record.status_changes.iter().fold(documents::DocumentStatus::Active, |_, e| match e.action {
                documents::StatusAction::Revoke => documents::DocumentStatus::Revoked,
                documents::StatusAction::Suspend => documents::DocumentStatus::Suspended,
                documents::StatusAction::Reinstate => documents::DocumentStatus::Active,
            });
        }
        let current = self.registry();
        let registry = if current.last_index().is_none_or(|i| i < size) { current } else { Arc::new(self.registry_at(Some(size))?.0) };
        let proof = self.document_proof_at(&record, &cp)?;
        Ok(Some((record, registry, proof)))
    }

    /// The offline proof for a document: its issuance and status entries and every
    /// registry change, against the latest checkpoint.
    pub fn document_proof(&self, record: &DocumentRecord) -> Result<DocumentProof, LedgerError> {
        let cp = self.checkpoint_for(None)?;
        self.document_proof_at(record, &cp)
    }

    fn document_proof_at(&self, record: &DocumentRecord, cp: &SignedCheckpoint) -> Result<DocumentProof, LedgerError> {
        let size = cp.checkpoint.size;
        let issuance = self.entry_proof(record.index, size)?;
        let status_changes = record
            .status_changes
            .iter()
            .map(|e| e.index)
            .filter(|i| *i < size)
            .map(|i| self.entry_proof(i, size))
            .collect::<Result<_, _>>()?;
        let registry_changes =
            self.registry_change_indices(size)?.into_iter().map(|i| self.entry_proof(i, size)).collect::<Result<_, _>>()?;
        Ok(DocumentProof { checkpoint: cp.to_text(), issuance, status_changes, registry_changes })
    }

    /// Documents of `holder` that expire within `within_ms` of `now_ms`.
    pub fn expiring(&self, holder: &str, now_ms: u64, within_ms: u64) -> Result<Vec<DocumentRecord>, LedgerError> {
        let mut records = Vec::new();
        for (key, _) in self.store.state_scan(Table::Holders, &holder_key(holder), 10_000)? {
            let Some(c) = key.get(key.len().saturating_sub(32)..).and_then(|s| <[u8; 32]>::try_from(s).ok()) else { continue };
            if let Some(r) = self.document(&Hash(c))? {
                records.push(r);
            }
        }
        Ok(documents::expiring(records.iter(), holder, now_ms, within_ms).into_iter().cloned().collect())
    }

    /// The stored state of a DID.
    pub fn did_state(&self, did: &str) -> Result<Option<DidState>, LedgerError> {
        match self.store.did_state(did)? {
            None => Ok(None),
            Some(bytes) => {
                serde_json::from_slice(&bytes).map(Some).map_err(|e| LedgerError::CorruptDid { did: did.to_owned(), reason: e.to_string() })
            }
        }
    }

    /// Resolves a `did:dojang` at `selector`, with the proof a verifier needs: every
    /// operation of the DID up to the latest checkpoint, each with its inclusion proof.
    pub fn resolve_did(&self, did: &str, selector: VersionSelector) -> Result<(Resolved, DidProof), LedgerError> {
        did_dojang::parse_did(did)?;
        // Checkpoint first: operations committed after it are left out of the answer.
        let cp = self.checkpoint_for(None)?;
        let size = cp.checkpoint.size;
        let state = self.did_state(did)?.ok_or_else(|| LedgerError::NoSuchDid(did.to_owned()))?;
        let mut records = Vec::new();
        let mut entries = Vec::new();
        for v in state.versions().iter().filter(|v| v.index < size) {
            let bytes = self.store.entry(v.index)?.ok_or(LedgerError::NoSuchEntry { index: v.index, size })?;
            let e = Entry::decode(&bytes).map_err(|err| LedgerError::CorruptDid { did: did.to_owned(), reason: err.to_string() })?;
            let op = DidOperation::decode(&e.payload)?;
            records.push(OpRecord {
                index: v.index,
                leaf_hash: dojang_core::entry::leaf_hash(&bytes),
                timestamp_ms: e.timestamp_ms,
                author: e.author,
                op,
            });
            entries.push(EntryProof {
                index: v.index,
                entry: base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &bytes),
                proof: self.tree.inclusion_proof(v.index, size)?,
            });
        }
        if records.is_empty() {
            return Err(LedgerError::NoSuchDid(did.to_owned()));
        }
        let resolved = did_dojang::resolve(&records, selector)?;
        let (version_id, version_time_ms) = match selector {
            VersionSelector::Latest => (None, None),
            VersionSelector::VersionId(h) => (Some(h), None),
            VersionSelector::VersionTime(t) => (None, Some(t)),
        };
        Ok((resolved, DidProof { did: did.to_owned(), version_id, version_time_ms, checkpoint: cp.to_text(), entries }))
    }

    /// Subscribes to access events as batches commit (`specs/access-log.md` §16.4).
    pub fn subscribe_access(&self) -> tokio::sync::broadcast::Receiver<Arc<AccessCommit>> {
        self.access_events.subscribe()
    }

    /// The leaf index of the event carrying `tag`, if a published checkpoint covers it.
    pub fn access_tag_index(&self, tag: &[u8; 32]) -> Result<Option<u64>, LedgerError> {
        let _guard = self.map_lock.read().unwrap_or_else(|p| p.into_inner());
        self.tag_index(tag)
    }

    fn tag_index(&self, tag: &[u8; 32]) -> Result<Option<u64>, LedgerError> {
        match self.store.state(Table::AccessTags, tag)? {
            None => Ok(None),
            Some(v) => <[u8; 8]>::try_from(v.as_slice())
                .map(|b| Some(u64::from_be_bytes(b)))
                .map_err(|_| LedgerError::CorruptState { what: "access tag index", reason: format!("{} bytes", v.len()) }),
        }
    }

    /// A subject's history (`specs/access-log.md` §15.1): for each chain, the events in its
    /// slots up to the first empty slot, each with inclusion and map proofs, and the map
    /// proof of that empty slot — all against the latest checkpoint, read under the map
    /// lock so that map, tree and checkpoint are one state.
    pub fn access_history(&self, subject: &str, chains: &[ChainRequest]) -> Result<HistoryBundle, LedgerError> {
        let _guard = self.map_lock.read().unwrap_or_else(|p| p.into_inner());
        let latest = self.latest();
        let size = latest.0;
        // Chains are independent: two threads share them (the map and tree reads are
        // shared-lock reads, and the result keeps the requested order).
        let half = chains.len().div_ceil(2);
        let (a, b) = chains.split_at(half.min(chains.len()));
        let (ra, rb) = std::thread::scope(|scope| {
            let hb = scope.spawn(|| b.iter().map(|c| self.chain_proof(c, size)).collect::<Result<Vec<_>, _>>());
            let ra = a.iter().map(|c| self.chain_proof(c, size)).collect::<Result<Vec<_>, _>>();
            (ra, hb.join())
        });
        let mut out = ra?;
        out.extend(rb.map_err(|_| LedgerError::CorruptState { what: "access history", reason: "a proof thread panicked".into() })??);
        Ok(HistoryBundle { subject: subject.to_owned(), checkpoint: latest.1.clone(), chains: out })
    }

    /// One chain of [`Ledger::access_history`]: the events up to the first empty slot with
    /// inclusion and map proofs, and the map proof of that empty slot. The caller holds the
    /// map lock.
    fn chain_proof(&self, chain: &ChainRequest, size: u64) -> Result<ChainProof, LedgerError> {
        let keys: Vec<Vec<u8>> = chain.tags.iter().map(|t| t.to_vec()).collect();
        let found = self.store.backend().multi_get(Table::AccessTags, &keys)?;
        let present = found.iter().take_while(|v| v.is_some()).count();
        let Some(next_tag) = chain.tags.get(present) else {
            return Err(LedgerError::GrantExhausted { writer: chain.writer.clone(), slots: chain.tags.len() });
        };
        // All map proofs of the chain in one walk (shared upper nodes read once), the
        // absence proof of the next slot last; the entries in one batched read.
        let mut tags: Vec<[u8; 32]> = chain.tags.iter().take(present).copied().collect();
        tags.push(*next_tag);
        let mut map_proofs = sparse_map::prove_many(&self.map, &tags)?;
        let next = map_proofs.pop().ok_or(LedgerError::CorruptState { what: "access map", reason: "no proof for the next slot".into() })?;
        let indices = found
            .iter()
            .take(present)
            .map(|v| {
                v.as_deref()
                    .and_then(|b| <[u8; 8]>::try_from(b).ok())
                    .map(u64::from_be_bytes)
                    .ok_or_else(|| LedgerError::CorruptState { what: "access tag index", reason: "not 8 bytes".into() })
            })
            .collect::<Result<Vec<u64>, _>>()?;
        let keys: Vec<Vec<u8>> = indices.iter().map(|i| i.to_be_bytes().to_vec()).collect();
        let bodies = self.store.backend().multi_get(Table::Entries, &keys)?;
        let mut events = Vec::with_capacity(present);
        for ((index, body), map) in indices.into_iter().zip(bodies).zip(map_proofs) {
            let bytes = body.ok_or(LedgerError::NoSuchEntry { index, size })?;
            events.push(EventProof {
                index,
                entry: base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &bytes),
                inclusion: self.tree.inclusion_proof(index, size)?,
                map,
            });
        }
        Ok(ChainProof { writer: chain.writer.clone(), start: chain.start, events, next })
    }

    /// Events sealed to the auditor key `kid` from leaf index `from` on, at most `limit`,
    /// each with its inclusion proof against the latest checkpoint (access-log §16.5).
    pub fn auditor_events(&self, kid: &str, from: u64, limit: usize) -> Result<(String, Vec<EntryProof>), LedgerError> {
        let _guard = self.map_lock.read().unwrap_or_else(|p| p.into_inner());
        let latest = self.latest();
        let prefix = auditor_prefix(kid);
        let rows = self.store.backend().scan_from(Table::AuditorEvents, &prefix, &auditor_key(kid, from), limit)?;
        let mut proofs = Vec::with_capacity(rows.len());
        for (k, _) in rows {
            let Some(index) = k.get(8..16).and_then(|b| <[u8; 8]>::try_from(b).ok()).map(u64::from_be_bytes) else { continue };
            if index < latest.0 {
                proofs.push(self.entry_proof(index, latest.0)?);
            }
        }
        Ok((latest.1.clone(), proofs))
    }

    /// The latest checkpoint: its tree size and signed-note text.
    pub fn latest(&self) -> Arc<(u64, String)> {
        self.latest_text.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn size(&self) -> u64 {
        self.latest().0
    }

    pub fn checkpoint_at(&self, size: u64) -> Result<String, LedgerError> {
        self.store.checkpoint_at(size)?.ok_or(LedgerError::NoCheckpointAt(size))
    }

    pub fn entry(&self, index: u64) -> Result<Vec<u8>, LedgerError> {
        let size = self.size();
        if index >= size {
            return Err(LedgerError::NoSuchEntry { index, size });
        }
        self.store.entry(index)?.ok_or(LedgerError::NoSuchEntry { index, size })
    }

    pub fn index_of(&self, leaf: &Hash) -> Result<u64, LedgerError> {
        match self.store.leaf_index(leaf)? {
            Some(i) if i < self.size() => Ok(i),
            _ => Err(LedgerError::NoSuchLeaf(*leaf)),
        }
    }

    pub fn last_nonce(&self, author: &str) -> Result<Option<u64>, LedgerError> {
        Ok(self.store.last_nonce(author)?)
    }

    /// The text of the published checkpoint at `size` (latest by default).
    pub fn checkpoint_text(&self, size: Option<u64>) -> Result<String, LedgerError> {
        let latest = self.latest();
        match size {
            None => Ok(latest.1.clone()),
            Some(s) if s > latest.0 => Err(LedgerError::SizeTooLarge { requested: s, current: latest.0 }),
            Some(s) => self.checkpoint_at(s),
        }
    }

    /// Resolves an optional requested size to a published checkpoint (latest by default).
    pub(crate) fn checkpoint_for(&self, size: Option<u64>) -> Result<SignedCheckpoint, LedgerError> {
        let text = self.checkpoint_text(size)?;
        SignedCheckpoint::parse(&text).map_err(|e| LedgerError::CorruptCheckpoint(e.to_string()))
    }

    /// An offline-verifiable inclusion bundle for leaf `index` against the checkpoint at
    /// `size` (the latest when None).
    pub fn inclusion_bundle(&self, index: u64, size: Option<u64>) -> Result<InclusionBundle, LedgerError> {
        let cp = self.checkpoint_for(size)?;
        let size = cp.checkpoint.size;
        if index >= size {
            return Err(LedgerError::NoSuchEntry { index, size });
        }
        let entry = self.store.entry(index)?.ok_or(LedgerError::NoSuchEntry { index, size })?;
        let proof = self.tree.inclusion_proof(index, size)?;
        Ok(InclusionBundle::new(index, proof, &entry, &cp))
    }

    /// A consistency bundle between two published checkpoints (`to` = latest when None).
    pub fn consistency_bundle(&self, from: u64, to: Option<u64>) -> Result<ConsistencyBundle, LedgerError> {
        let new = self.checkpoint_for(to)?;
        let to = new.checkpoint.size;
        if from == 0 || from > to {
            return Err(LedgerError::BadRange { from, to });
        }
        let old = self.checkpoint_for(Some(from))?;
        let proof = self.tree.consistency_proof(from, to)?;
        Ok(ConsistencyBundle { old_size: from, new_size: to, proof, old_checkpoint: old.to_text(), new_checkpoint: new.to_text() })
    }
}
