//! The mempool every validator keeps (`specs/consensus.md` §3.2): entries that passed
//! admission here or arrived by gossip from another validator, deduplicated by leaf hash,
//! bounded in bytes, in arrival order. Any proposer takes from it; an entry leaves it only
//! when a decided block holds it (whoever proposed that block), and the submitters waiting
//! on it are answered then.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Mutex;

use dojang_core::admission::{AdmissionError, Candidate};
use dojang_core::hash::Hash;
use tokio::sync::{Notify, oneshot};

use crate::sequencer::{Outcome, SequencerError};

pub type Reply = oneshot::Sender<Result<Vec<Outcome>, SequencerError>>;

/// One pooled entry and the submissions waiting for its outcome.
struct Pooled {
    cand: Candidate,
    seq: u64,
    /// (submission id, position in that submission).
    waiters: Vec<(u64, usize)>,
}

/// A submission to this validator's API, answered when all its entries have an outcome.
struct Waiting {
    reply: Reply,
    outcomes: Vec<Option<Outcome>>,
    missing: usize,
}

#[derive(Default)]
struct Inner {
    next_seq: u64,
    next_job: u64,
    order: BTreeMap<u64, Hash>,
    entries: HashMap<Hash, Pooled>,
    bytes: usize,
    jobs: HashMap<u64, Waiting>,
    /// Leaf hashes of recently committed entries, oldest first: a gossiped copy that
    /// arrives after its entry committed is not pooled again (checked under the same lock
    /// as commits, so there is no window between the check and the insert).
    recent: HashSet<Hash>,
    recent_order: VecDeque<Hash>,
}

impl Inner {
    /// Records an outcome for every waiter of a removed entry; answers completed jobs.
    fn settle(&mut self, waiters: Vec<(u64, usize)>, outcome: &Outcome) {
        for (job, i) in waiters {
            let Some(w) = self.jobs.get_mut(&job) else { continue };
            if let Some(slot) = w.outcomes.get_mut(i)
                && slot.is_none()
            {
                *slot = Some(outcome.clone());
                w.missing = w.missing.saturating_sub(1);
            }
            if w.missing == 0
                && let Some(w) = self.jobs.remove(&job)
            {
                let _ = w.reply.send(Ok(w.outcomes.into_iter().flatten().collect()));
            }
        }
    }

    fn remove(&mut self, hash: &Hash) -> Option<Pooled> {
        let p = self.entries.remove(hash)?;
        self.order.remove(&p.seq);
        self.bytes = self.bytes.saturating_sub(p.cand.encoded.len());
        Some(p)
    }

    fn insert(&mut self, cand: Candidate, waiter: Option<(u64, usize)>) {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.order.insert(seq, cand.leaf_hash);
        self.bytes = self.bytes.saturating_add(cand.encoded.len());
        self.entries.insert(cand.leaf_hash, Pooled { cand, seq, waiters: waiter.into_iter().collect() });
    }
}

/// How many committed leaf hashes the pool remembers (a few blocks' worth at full load).
const RECENT: usize = 1 << 18;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Offered {
    pub added: usize,
    pub known: usize,
    pub dropped_full: usize,
}

/// The bounded, deduplicated mempool of one validator.
pub struct Mempool {
    inner: Mutex<Inner>,
    capacity_bytes: usize,
    /// Woken when entries arrive, so an idle proposer can propose at once.
    pub notify: Notify,
}

impl std::fmt::Debug for Mempool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mempool").field("capacity_bytes", &self.capacity_bytes).finish_non_exhaustive()
    }
}

impl Mempool {
    pub fn new(capacity_bytes: usize) -> Self {
        Mempool { inner: Mutex::new(Inner::default()), capacity_bytes: capacity_bytes.max(1), notify: Notify::new() }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues a submission from this validator's API. Entries already pooled (the same
    /// bytes submitted again, here or at another validator) are not added twice: the new
    /// submission waits for the same outcome. Returns the entries that are new, to gossip.
    /// Refuses the whole submission with a retry hint when its new bytes do not fit.
    pub fn submit(&self, candidates: Vec<Candidate>, reply: Reply) -> Result<Vec<Vec<u8>>, (Reply, SequencerError)> {
        if candidates.is_empty() {
            let _ = reply.send(Ok(Vec::new()));
            return Ok(Vec::new());
        }
        let mut q = self.lock();
        let new_bytes: usize = candidates.iter().filter(|c| !q.entries.contains_key(&c.leaf_hash)).map(|c| c.encoded.len()).sum();
        if q.bytes > 0 && q.bytes.saturating_add(new_bytes) > self.capacity_bytes {
            let e = SequencerError::Full { queued_bytes: q.bytes, capacity_bytes: self.capacity_bytes, retry_after_secs: 1 };
            return Err((reply, e));
        }
        let job = q.next_job;
        q.next_job += 1;
        let n = candidates.len();
        q.jobs.insert(job, Waiting { reply, outcomes: vec![None; n], missing: n });
        let mut fresh = Vec::new();
        for (i, c) in candidates.into_iter().enumerate() {
            if let Some(p) = q.entries.get_mut(&c.leaf_hash) {
                p.waiters.push((job, i));
            } else {
                fresh.push(c.encoded.clone());
                q.insert(c, Some((job, i)));
            }
        }
        drop(q);
        self.notify.notify_one();
        Ok(fresh)
    }

    /// Adds checked entries gossiped by another validator. Entries already pooled are
    /// skipped; when the pool is full the rest are dropped (their origin still holds them
    /// and proposes them in its turn, so dropping costs latency, never an entry).
    pub fn offer(&self, candidates: Vec<Candidate>) -> Offered {
        let mut out = Offered::default();
        let mut q = self.lock();
        for c in candidates {
            if q.entries.contains_key(&c.leaf_hash) || q.recent.contains(&c.leaf_hash) {
                out.known += 1;
            } else if q.bytes.saturating_add(c.encoded.len()) > self.capacity_bytes {
                out.dropped_full += 1;
            } else {
                q.insert(c, None);
                out.added += 1;
            }
        }
        drop(q);
        if out.added > 0 {
            self.notify.notify_one();
        }
        out
    }

    /// Which of these leaf hashes are pooled; for each, its checked candidate (so a block
    /// built from entries this validator already checked is not verified again).
    pub fn checked(&self, hashes: &[Hash]) -> Vec<Option<Candidate>> {
        let q = self.lock();
        hashes.iter().map(|h| q.entries.get(h).map(|p| p.cand.clone())).collect()
    }

    /// The entries neither pooled nor recently committed (hashed outside the lock, looked
    /// up under one lock): what gossip intake still has to check.
    pub fn unknown(&self, entries: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
        let hashes: Vec<Hash> = entries.iter().map(|e| dojang_core::entry::leaf_hash(e)).collect();
        let q = self.lock();
        entries.into_iter().zip(hashes).filter(|(_, h)| !q.entries.contains_key(h) && !q.recent.contains(h)).map(|(e, _)| e).collect()
    }

    /// The entries of a new block: oldest first, up to `max_entries` and `max_bytes`, each
    /// author's entries in nonce order (nonces must strictly increase, so a block never
    /// holds an author's later nonce before an earlier one it also holds). Entries whose
    /// time is too far from the block's (`max_skew_ms`) can never be committed; they leave
    /// the pool here and their submitters get the clock-skew error.
    pub fn select(&self, max_entries: usize, max_bytes: usize, block_ts: u64, max_skew_ms: u64) -> Vec<Candidate> {
        let mut q = self.lock();
        let mut out: Vec<Candidate> = Vec::new();
        let mut stale = Vec::new();
        let mut bytes = 0usize;
        for h in q.order.values() {
            if out.len() >= max_entries {
                break;
            }
            let Some(p) = q.entries.get(h) else { continue };
            if p.cand.entry.timestamp_ms.abs_diff(block_ts) > max_skew_ms {
                stale.push(*h);
                continue;
            }
            if !out.is_empty() && bytes.saturating_add(p.cand.encoded.len()) > max_bytes {
                break;
            }
            bytes = bytes.saturating_add(p.cand.encoded.len());
            out.push(p.cand.clone());
        }
        for h in stale {
            if let Some(p) = q.remove(&h) {
                let e = AdmissionError::ClockSkew { timestamp_ms: p.cand.entry.timestamp_ms, now_ms: block_ts, max_skew_ms };
                q.settle(p.waiters, &Err(e));
            }
        }
        drop(q);
        order_nonces(&mut out);
        out
    }

    /// A decided block committed: its entries leave the pool and their waiters get the
    /// ledger's outcome (a receipt, or why the ledger refused it).
    pub fn committed<'a>(&self, outcomes: impl IntoIterator<Item = (&'a Hash, &'a Outcome)>) {
        let mut q = self.lock();
        for (h, o) in outcomes {
            if let Some(p) = q.remove(h) {
                q.settle(p.waiters, o);
            }
            if q.recent.insert(*h) {
                q.recent_order.push_back(*h);
            }
        }
        while q.recent_order.len() > RECENT {
            if let Some(old) = q.recent_order.pop_front() {
                q.recent.remove(&old);
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.lock().entries.is_empty()
    }

    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    /// Fails every waiting submission (on shutdown) and empties the pool.
    pub fn fail_all(&self) {
        let mut q = self.lock();
        for (_, w) in q.jobs.drain() {
            let _ = w.reply.send(Err(SequencerError::Stopped));
        }
        q.order.clear();
        q.entries.clear();
        q.bytes = 0;
    }
}

/// Puts each author's entries in nonce order, keeping the positions the author's entries
/// occupy (so arrival order across authors is kept).
fn order_nonces(cands: &mut [Candidate]) {
    let mut by_author: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, c) in cands.iter().enumerate() {
        by_author.entry(c.entry.author.as_str()).or_default().push(i);
    }
    let groups: Vec<Vec<usize>> = by_author
        .into_values()
        .filter(|p| p.windows(2).any(|w| matches!(w, [a, b] if cands_nonce(cands, *a) > cands_nonce(cands, *b))))
        .collect();
    for positions in groups {
        let mut items: Vec<Candidate> = positions.iter().filter_map(|&i| cands.get(i).cloned()).collect();
        items.sort_by_key(|c| c.entry.nonce);
        for (&i, c) in positions.iter().zip(items) {
            if let Some(slot) = cands.get_mut(i) {
                *slot = c;
            }
        }
    }
}

fn cands_nonce(cands: &[Candidate], i: usize) -> u64 {
    cands.get(i).map_or(0, |c| c.entry.nonce)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
    use super::*;
    use dojang_core::entry::{Kind, UnsignedEntry};
    use ed25519_dalek::SigningKey;

    fn cand(key: &SigningKey, nonce: u64, ts: u64) -> Candidate {
        let author = dojang_core::did_key::DidKey::from_verifying_key(&key.verifying_key()).key_id();
        let e = UnsignedEntry { kind: Kind::AccessEvent, author, nonce, timestamp_ms: ts, payload: nonce.to_be_bytes().to_vec() }
            .sign(key, &Hash([7; 32]))
            .unwrap();
        let encoded = e.encode().unwrap();
        Candidate {
            leaf_hash: dojang_core::entry::leaf_hash(&encoded),
            encoded,
            entry: e,
            key: key.verifying_key(),
            payload: Default::default(),
        }
    }

    fn receipt_err() -> Outcome {
        Err(AdmissionError::Replay { author: "x".into(), nonce: 1, last: 1 })
    }

    #[test]
    fn duplicates_share_one_slot_and_every_waiter_is_answered() {
        let k = SigningKey::from_bytes(&[1; 32]);
        let m = Mempool::new(1 << 20);
        let (a, b) = (cand(&k, 1, 0), cand(&k, 2, 0));
        let (tx1, mut rx1) = oneshot::channel();
        let (tx2, mut rx2) = oneshot::channel();
        let fresh = m.submit(vec![a.clone(), b.clone()], tx1).unwrap();
        assert_eq!(fresh.len(), 2);
        let fresh = m.submit(vec![b.clone()], tx2).unwrap();
        assert!(fresh.is_empty(), "the same bytes again are not gossiped again");
        assert_eq!(m.len(), 2);
        assert_eq!(m.offer(vec![a.clone()]), Offered { added: 0, known: 1, dropped_full: 0 });
        let o = receipt_err();
        m.committed([(&b.leaf_hash, &o)]);
        assert_eq!(m.offer(vec![b.clone()]).known, 1, "a late gossiped copy of a committed entry is not pooled again");
        assert!(m.unknown(vec![a.encoded.clone(), b.encoded.clone()]).is_empty(), "pooled and committed entries are both known to intake");
        assert!(rx1.try_recv().is_err(), "first submission still waits for entry a");
        assert_eq!(rx2.try_recv().unwrap().unwrap().len(), 1);
        m.committed([(&a.leaf_hash, &o)]);
        assert_eq!(rx1.try_recv().unwrap().unwrap().len(), 2);
        assert!(m.is_empty());
    }

    #[test]
    fn bounded_refuses_submissions_and_drops_gossip_when_full() {
        let k = SigningKey::from_bytes(&[2; 32]);
        let a = cand(&k, 1, 0);
        let m = Mempool::new(a.encoded.len() + 10);
        m.submit(vec![a], oneshot::channel().0).unwrap();
        let r = m.submit(vec![cand(&k, 2, 0)], oneshot::channel().0);
        assert!(matches!(r, Err((_, SequencerError::Full { .. }))));
        assert_eq!(m.offer(vec![cand(&k, 3, 0)]).dropped_full, 1);
        assert_eq!(m.len(), 1);
    }

    #[test]
    fn select_orders_nonces_and_expires_stale_entries() {
        let (k1, k2) = (SigningKey::from_bytes(&[3; 32]), SigningKey::from_bytes(&[4; 32]));
        let m = Mempool::new(1 << 20);
        let stale = cand(&k2, 9, 0);
        let (tx, mut rx) = oneshot::channel();
        m.submit(vec![stale.clone()], tx).unwrap();
        m.offer(vec![cand(&k1, 3, 1000), cand(&k2, 1, 1000), cand(&k1, 2, 1000), cand(&k1, 5, 1000)]);
        let got = m.select(10, usize::MAX, 1000, 500);
        let seen: Vec<(bool, u64)> = got.iter().map(|c| (c.key == k1.verifying_key(), c.entry.nonce)).collect();
        assert_eq!(seen, vec![(true, 2), (false, 1), (true, 3), (true, 5)]);
        assert!(matches!(rx.try_recv().unwrap().unwrap()[0], Err(AdmissionError::ClockSkew { .. })));
        assert_eq!(m.unknown(vec![stale.encoded.clone()]).len(), 1, "an expired entry leaves the pool");
        assert_eq!(m.select(2, usize::MAX, 1000, 500).len(), 2, "bounded by entries");
        assert_eq!(m.len(), 4, "selecting does not remove: only a decided block does");
    }

    #[test]
    fn fail_all_answers_everyone() {
        let k = SigningKey::from_bytes(&[5; 32]);
        let m = Mempool::new(1 << 20);
        let (tx, mut rx) = oneshot::channel();
        m.submit(vec![cand(&k, 1, 0)], tx).unwrap();
        m.fail_all();
        assert!(matches!(rx.try_recv().unwrap(), Err(SequencerError::Stopped)));
        assert!(m.is_empty());
    }
}
