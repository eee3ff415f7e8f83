//! Status lists in the node (`specs/credentials.md` §6.3, §8): applying
//! `status-list-update/v1` entries in ledger order, their rows in the `status_lists`
//! table, and the proof of one bit against the latest published checkpoint. The ledger
//! calls in here from its apply step; the rules themselves are the core's
//! [`dojang_core::vc::status_list`].

use std::collections::HashMap;

use dojang_core::admission::{AdmissionError, Candidate};
use dojang_core::registry::Registry;
use dojang_core::vc::status_list::{self, StatusListState, StatusProof};

use crate::ledger::{Ledger, LedgerError};
use crate::storage::{LedgerBatch, Put, StateReader, Table};

/// Lists changed by the entries of one batch, so later entries see earlier ones.
#[derive(Debug, Default)]
pub struct Staged {
    lists: HashMap<String, (StatusListState, Vec<u8>)>,
}

fn meta_key(id: &str) -> Vec<u8> {
    let mut k = b"m".to_vec();
    k.extend_from_slice(id.as_bytes());
    k
}

fn bits_key(id: &str) -> Vec<u8> {
    let mut k = b"b".to_vec();
    k.extend_from_slice(id.as_bytes());
    k
}

/// A list's stored state and bits.
pub fn load(ledger: &Ledger, id: &str) -> Result<Option<(StatusListState, Vec<u8>)>, LedgerError> {
    let store = ledger.store();
    let Some(meta) = store.state(Table::StatusLists, &meta_key(id))? else { return Ok(None) };
    let state: StatusListState =
        serde_json::from_slice(&meta).map_err(|e| LedgerError::CorruptState { what: "status list", reason: e.to_string() })?;
    let bits = store.state(Table::StatusLists, &bits_key(id))?.unwrap_or_default();
    if bits.len() as u64 * 8 != state.size {
        return Err(LedgerError::CorruptState {
            what: "status list bits",
            reason: format!("{} bytes for {} bits", bits.len(), state.size),
        });
    }
    Ok(Some((state, bits)))
}

/// Applies one update (§6.4) against the list as this batch left it, else as stored, and
/// the registry at the entry's height. The outer error is a storage failure; the inner one
/// refuses this entry only.
pub fn apply(
    ledger: &Ledger,
    staged: &mut Staged,
    batch_registry: Option<&Registry>,
    c: &Candidate,
    index: u64,
) -> Result<Result<(), AdmissionError>, LedgerError> {
    let update = match c.status_list_update() {
        Ok(u) => u,
        Err(e) => return Ok(Err(e.into())),
    };
    let current = match staged.lists.get(&update.list) {
        Some(v) => Some(v.clone()),
        None => load(ledger, &update.list)?,
    };
    let registry = ledger.registry();
    let reg = batch_registry.unwrap_or(&registry);
    match status_list::apply_update(current.as_ref().map(|(s, b)| (s, b.as_slice())), reg, &c.entry.author, &update, index) {
        Ok(next) => {
            staged.lists.insert(update.list, next);
            Ok(Ok(()))
        }
        Err(e) => Ok(Err(e.into())),
    }
}

/// The batch's table writes: one state row and one bits row per changed list.
pub fn stage(staged: &mut Staged, lb: &mut LedgerBatch) -> Result<(), LedgerError> {
    for (id, (state, bits)) in staged.lists.drain() {
        let meta = serde_json::to_vec(&state).map_err(|e| LedgerError::CorruptState { what: "status list", reason: e.to_string() })?;
        lb.extra.push(Put { table: Table::StatusLists, key: meta_key(&id), value: meta });
        lb.extra.push(Put { table: Table::StatusLists, key: bits_key(&id), value: bits });
    }
    Ok(())
}

/// A bit with its proof against the latest published checkpoint (§6.5), and the list's
/// state and bits as of that checkpoint; None when no published checkpoint covers the
/// list's creation. The checkpoint is read first and the state must not be newer, so the
/// answer describes one tree (a commit in flight is waited out).
pub fn status_at_checkpoint(ledger: &Ledger, id: &str, index: u64) -> Result<Option<(StatusListState, Vec<u8>, StatusProof)>, LedgerError> {
    for _ in 0..200 {
        let cp = ledger.checkpoint_for(None)?;
        let size = cp.checkpoint.size;
        let Some((state, bits)) = load(ledger, id)? else { return Ok(None) };
        if state.created_index >= size {
            return Ok(None);
        }
        if state.latest_index >= size {
            // The state was committed with a checkpoint not yet published to readers.
            std::thread::sleep(std::time::Duration::from_millis(1));
            continue;
        }
        if index >= state.size {
            return Err(LedgerError::NoSuchEntry { index, size: state.size });
        }
        let (chunk, path) = status_list::chunk_proof(&bits, index).ok_or(LedgerError::NoSuchEntry { index, size: state.size })?;
        let creation = ledger.entry_proof(state.created_index, size)?;
        let latest = if state.latest_index != state.created_index { Some(ledger.entry_proof(state.latest_index, size)?) } else { None };
        let registry_changes =
            ledger.registry_change_indices(size)?.into_iter().map(|i| ledger.entry_proof(i, size)).collect::<Result<_, _>>()?;
        let proof = StatusProof {
            checkpoint: cp.to_text(),
            list: id.to_owned(),
            index,
            creation,
            latest,
            chunk: base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &chunk),
            path,
            registry_changes,
        };
        return Ok(Some((state, bits, proof)));
    }
    Err(LedgerError::CorruptState { what: "status list", reason: "state stayed ahead of the published checkpoint".into() })
}
