//! Blocks: a header and its ordered entries, as value sync ships them and as each height
//! is stored (`specs/consensus.md` §6); and the mempool that feeds proposals.

use std::collections::VecDeque;
use std::sync::Mutex;

use dojang_core::admission::Candidate;
use tokio::sync::{Notify, oneshot};

use super::codec::{CodecError, R, W};
use super::types::{BlockHeader, entries_hash};
use crate::sequencer::{Outcome, SequencerError};

/// A decided or proposed block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    pub header: BlockHeader,
    pub entries: Vec<Vec<u8>>,
}

impl Block {
    pub fn encode(&self) -> Vec<u8> {
        let mut w = W::default();
        w.raw(&self.header.encode()).len(self.entries.len());
        for e in &self.entries {
            w.bytes(e);
        }
        w.0
    }

    /// Decodes and checks that the entries match the header's count and hash.
    pub fn decode(b: &[u8]) -> Result<Block, CodecError> {
        let mut r = R::new(b);
        let header = BlockHeader::decode(r.take(BlockHeader::ENCODED_LEN)?).ok_or_else(|| CodecError("block header".into()))?;
        let n = r.len(4)?;
        let mut entries = Vec::with_capacity(n);
        for _ in 0..n {
            entries.push(r.bytes()?.to_vec());
        }
        r.done()?;
        let block = Block { header, entries };
        block.check()?;
        Ok(block)
    }

    /// The header commits to exactly these entries.
    pub fn check(&self) -> Result<(), CodecError> {
        if self.header.count as usize != self.entries.len() {
            return Err(CodecError(format!("header says {} entries, block has {}", self.header.count, self.entries.len())));
        }
        if entries_hash(self.entries.iter().map(Vec::as_slice)) != self.header.entries_hash {
            return Err(CodecError("entries do not match the header's entries_hash".into()));
        }
        Ok(())
    }
}

/// What a height stores: the block and its commit certificate with vote extensions.
pub fn encode_record(block: &[u8], certificate: &[u8]) -> Vec<u8> {
    let mut w = W::default();
    w.bytes(block).bytes(certificate);
    w.0
}

pub fn decode_record(b: &[u8]) -> Result<(&[u8], &[u8]), CodecError> {
    let mut r = R::new(b);
    let block = r.bytes()?;
    let cert = r.bytes()?;
    r.done()?;
    Ok((block, cert))
}

/// One submission waiting in the mempool: admitted candidates and who to tell.
#[derive(Debug)]
pub struct Job {
    pub candidates: Vec<Candidate>,
    pub reply: oneshot::Sender<Result<Vec<Outcome>, SequencerError>>,
    pub bytes: usize,
}

/// The bounded mempool of one validator (`specs/consensus.md` §3.2). Entries reach it only
/// through this validator's write path, already decoded, signature-checked and authorised;
/// it proposes them when it is the proposer. A submission is never split across blocks.
#[derive(Debug)]
pub struct Mempool {
    queue: Mutex<(VecDeque<Job>, usize)>,
    capacity_bytes: usize,
    pub notify: Notify,
}

impl Mempool {
    pub fn new(capacity_bytes: usize) -> Self {
        Mempool { queue: Mutex::new((VecDeque::new(), 0)), capacity_bytes: capacity_bytes.max(1), notify: Notify::new() }
    }

    /// Queues a job, or refuses it with a retry hint when the pool is full.
    pub fn push(&self, job: Job) -> Result<(), (Job, SequencerError)> {
        let mut q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        if q.1 > 0 && q.1.saturating_add(job.bytes) > self.capacity_bytes {
            let e = SequencerError::Full { queued_bytes: q.1, capacity_bytes: self.capacity_bytes, retry_after_secs: 1 };
            return Err((job, e));
        }
        q.1 = q.1.saturating_add(job.bytes);
        q.0.push_back(job);
        drop(q);
        self.notify.notify_one();
        Ok(())
    }

    /// Puts jobs of a proposal that was not decided back at the front, in order.
    pub fn requeue(&self, jobs: Vec<Job>) {
        let mut q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        for job in jobs.into_iter().rev() {
            q.1 = q.1.saturating_add(job.bytes);
            q.0.push_front(job);
        }
    }

    /// Takes whole jobs up to `max_entries` entries (at least one job when any is queued).
    pub fn take(&self, max_entries: usize) -> Vec<Job> {
        let mut q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = Vec::new();
        let mut n = 0usize;
        while let Some(front) = q.0.front() {
            if !out.is_empty() && n + front.candidates.len() > max_entries {
                break;
            }
            let Some(job) = q.0.pop_front() else { break };
            n += job.candidates.len();
            q.1 = q.1.saturating_sub(job.bytes);
            out.push(job);
        }
        out
    }

    pub fn is_empty(&self) -> bool {
        self.queue.lock().unwrap_or_else(|p| p.into_inner()).0.is_empty()
    }

    /// Fails every queued job (on shutdown).
    pub fn fail_all(&self) {
        let mut q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        for job in q.0.drain(..) {
            let _ = job.reply.send(Err(SequencerError::Stopped));
        }
        q.1 = 0;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
    use super::*;
    use crate::consensus::types::Address;

    #[test]
    fn blocks_roundtrip_and_refuse_tampering() {
        let entries = vec![b"one".to_vec(), b"two".to_vec()];
        let header = BlockHeader {
            height: 4,
            timestamp_ms: 9,
            proposer: Address([1; 32]),
            count: 2,
            entries_hash: entries_hash(entries.iter().map(Vec::as_slice)),
        };
        let b = Block { header, entries };
        assert_eq!(Block::decode(&b.encode()).unwrap(), b);
        let mut bad = b.clone();
        bad.entries[1] = b"tw0".to_vec();
        assert!(Block::decode(&bad.encode()).is_err());
        let rec = encode_record(&b.encode(), b"cert");
        let (blk, cert) = decode_record(&rec).unwrap();
        assert_eq!(blk, b.encode().as_slice());
        assert_eq!(cert, b"cert");
    }

    #[test]
    fn mempool_is_bounded_and_never_splits_a_job() {
        let m = Mempool::new(100);
        let job = |bytes| Job { candidates: Vec::new(), reply: oneshot::channel().0, bytes };
        m.push(job(60)).unwrap();
        assert!(matches!(m.push(job(60)), Err((_, SequencerError::Full { .. }))));
        m.push(job(40)).unwrap();
        assert_eq!(m.take(1).len(), 2, "jobs with no entries are all taken");
        assert!(m.is_empty());
    }
}
