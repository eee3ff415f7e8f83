//! The front of the write path (`specs/ledger.md` §6): every submission — HTTP, CLI
//! devnet loader, benchmark — goes through [`WritePath::submit`]: decode with a size
//! limit, verify signatures (batched, on blocking threads), authorise, then hand the
//! survivors to the [`Sequencer`]. Results come back in submission order.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use dojang_core::admission::{AdmissionError, Candidate, Rules};
use dojang_core::entry::{self, EntryError};
use ed25519_dalek::VerifyingKey;

use crate::clock::Clock;
use crate::ledger::Ledger;
use crate::metrics::Metrics;
use crate::sequencer::{Outcome, Sequencer, SequencerError};

/// Batches at least this large are verified on two threads (one per core here).
const PARALLEL_VERIFY_MIN: usize = 64;

#[derive(Debug)]
pub struct WritePath {
    rules: Arc<Rules>,
    ledger: Arc<Ledger>,
    sequencer: Arc<dyn Sequencer>,
    clock: Arc<dyn Clock>,
    metrics: Arc<Metrics>,
}

impl WritePath {
    pub fn new(
        rules: Arc<Rules>,
        ledger: Arc<Ledger>,
        sequencer: Arc<dyn Sequencer>,
        clock: Arc<dyn Clock>,
        metrics: Arc<Metrics>,
    ) -> Self {
        WritePath { rules, ledger, sequencer, clock, metrics }
    }

    /// Submits encoded entries. The outer error means none was taken (queue full or
    /// stopped); otherwise each entry has its own outcome.
    pub async fn submit(self: &Arc<Self>, entries: Vec<Vec<u8>>) -> Result<Vec<Outcome>, SequencerError> {
        // A read replica refuses before any work: nothing it could check would be sequenced.
        if let Some(e) = self.sequencer.refuses_writes() {
            return Err(e);
        }
        let n = entries.len();
        let now = self.clock.now_ms();
        let mut results: Vec<Option<Outcome>> = vec![None; n];
        let mut cands = Vec::with_capacity(n);
        let mut positions = Vec::with_capacity(n);
        for (i, bytes) in entries.into_iter().enumerate() {
            match self.rules.decode(bytes, now, author_key) {
                Ok(c) => {
                    cands.push(c);
                    positions.push(i);
                }
                Err(e) => {
                    self.metrics.reject(e.slug());
                    set(&mut results, i, Err(e));
                }
            }
        }
        let rules = self.rules.clone();
        let (cands, verdicts) = tokio::task::spawn_blocking(move || {
            let v = verify_parallel(&rules, &cands);
            (cands, v)
        })
        .await
        .map_err(|_| SequencerError::Stopped)?;
        // An entry whose nonce the ledger has already passed is refused at the door (§6.3):
        // it could only be refused at commit, after waiting for a block. The ledger
        // re-checks at commit, against the entries ordered before it.
        let mut nonces = CommittedNonces::new(&self.ledger);
        let mut pass = Vec::with_capacity(cands.len());
        let mut pass_pos = Vec::with_capacity(cands.len());
        for ((mut c, v), i) in cands.into_iter().zip(verdicts).zip(positions) {
            match v.and_then(|()| nonces.check(&c.entry)).and_then(|()| self.rules.authorize(&c.entry)) {
                Ok(payload) => {
                    c.payload = payload;
                    pass.push(c);
                    pass_pos.push(i);
                }
                Err(e) => {
                    self.metrics.reject(e.slug());
                    set(&mut results, i, Err(e));
                }
            }
        }
        if !pass.is_empty() {
            let outcomes = self.sequencer.submit(pass).await?;
            for (o, i) in outcomes.into_iter().zip(pass_pos) {
                set(&mut results, i, o);
            }
        }
        // Refusals at apply time (replays, state rules) are counted by the committer.
        results
            .into_iter()
            .map(|r| r.ok_or_else(|| SequencerError::Commit("the sequencer answered fewer entries than it was given".into())))
            .collect()
    }
}

/// Batch signature verification (`specs/ledger.md` §6.2), split over two threads for
/// large batches (one per core on the machine this is tuned for). Used by the write path,
/// by consensus for blocks and for gossiped entries.
pub fn verify_parallel(rules: &Rules, cands: &[Candidate]) -> Vec<Result<(), AdmissionError>> {
    if cands.len() < PARALLEL_VERIFY_MIN {
        return rules.verify_signatures(cands, rand_core::OsRng);
    }
    let (left, right) = cands.split_at(cands.len() / 2);
    std::thread::scope(|s| {
        let h = s.spawn(|| rules.verify_signatures(right, rand_core::OsRng));
        let mut a = rules.verify_signatures(left, rand_core::OsRng);
        a.extend(
            h.join().unwrap_or_else(|_| {
                vec![Err(AdmissionError::Entry(EntryError::BadSignature("verifier thread failed".into()))); right.len()]
            }),
        );
        a
    })
}

/// The ledger's last committed nonce of each author, looked up once per batch: an entry
/// at or below it is a replay (`specs/ledger.md` §6.3). The write path and gossip intake
/// refuse those before they wait in a mempool.
#[derive(Debug)]
pub struct CommittedNonces<'a> {
    ledger: &'a Ledger,
    last: HashMap<String, Option<u64>>,
}

impl<'a> CommittedNonces<'a> {
    pub fn new(ledger: &'a Ledger) -> Self {
        CommittedNonces { ledger, last: HashMap::new() }
    }

    pub fn check(&mut self, entry: &entry::Entry) -> Result<(), AdmissionError> {
        let ledger = self.ledger;
        let last = *self.last.entry(entry.author.clone()).or_insert_with(|| ledger.last_nonce(&entry.author).ok().flatten());
        match last {
            Some(last) if entry.nonce <= last => Err(AdmissionError::Replay { author: entry.author.clone(), nonce: entry.nonce, last }),
            _ => Ok(()),
        }
    }
}

/// Bound on memoised author keys; the cache is simply cleared when full.
const KEY_CACHE_MAX: usize = 100_000;

static AUTHOR_KEYS: std::sync::LazyLock<RwLock<HashMap<String, VerifyingKey>>> = std::sync::LazyLock::new(Default::default);

/// An entry author's key ([`entry::author_key`]), memoised: parsing the did:key and
/// decompressing its point costs about as much as a batched signature check, and the same
/// few writer keys sign almost every entry. The mapping is a pure function of the string,
/// so one cache serves every node in the process.
pub fn author_key(author: &str) -> Result<VerifyingKey, EntryError> {
    if let Some(k) = AUTHOR_KEYS.read().unwrap_or_else(|p| p.into_inner()).get(author) {
        return Ok(*k);
    }
    let k = entry::author_key(author)?;
    let mut cache = AUTHOR_KEYS.write().unwrap_or_else(|p| p.into_inner());
    if cache.len() >= KEY_CACHE_MAX {
        cache.clear();
    }
    cache.insert(author.to_owned(), k);
    Ok(k)
}

/// Fills result slot `i`; every index comes from enumerating the same input.
fn set(results: &mut [Option<Outcome>], i: usize, o: Outcome) {
    if let Some(slot) = results.get_mut(i) {
        *slot = Some(o);
    }
}
