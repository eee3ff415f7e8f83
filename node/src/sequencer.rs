//! The sequencer: decides the order of admitted entries and hands ordered batches to the
//! ledger (write-path step 4, `specs/ledger.md` §6.4).
//!
//! [`Sequencer`] is the seam where consensus plugs in. [`LocalSequencer`] is the
//! single-node implementation: a bounded queue and one committer thread that drains it
//! into group-committed batches — many entries per WAL sync. A BFT engine replaces it by
//! implementing the same trait (ordering = decided blocks); nothing else changes.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use dojang_core::admission::{AdmissionError, Candidate};
use tokio::sync::{mpsc, oneshot};

use crate::clock::Clock;
use crate::ledger::{Ledger, Receipt};
use crate::metrics::Metrics;

/// Per-entry outcome of a submission.
pub type Outcome = Result<Receipt, AdmissionError>;

#[derive(Debug, Clone, thiserror::Error)]
pub enum SequencerError {
    #[error("the submission queue is full ({queued_bytes} of {capacity_bytes} bytes waiting); retry after {retry_after_secs} s")]
    Full { queued_bytes: usize, capacity_bytes: usize, retry_after_secs: u64 },
    #[error("the sequencer has stopped")]
    Stopped,
    #[error("the ledger failed to commit: {0}")]
    Commit(String),
    /// This node is a read replica (`specs/consensus.md` §10): it orders nothing.
    #[error("this node is a read replica and accepts no writes; submit to a validator: {validators}")]
    ReadReplica { validators: String },
}

pub type SubmitFuture = Pin<Box<dyn Future<Output = Result<Vec<Outcome>, SequencerError>> + Send>>;

/// Orders admitted entries into the ledger. The future resolves once every candidate is
/// either committed (durably, with a receipt) or refused.
pub trait Sequencer: Send + Sync + std::fmt::Debug + 'static {
    fn submit(&self, candidates: Vec<Candidate>) -> SubmitFuture;

    /// Some(error) when this sequencer refuses every submission whatever it holds, so the
    /// write path can answer before spending time on decoding and signature checks.
    fn refuses_writes(&self) -> Option<SequencerError> {
        None
    }
}

/// The sequencer of a read replica (`specs/consensus.md` §10): a replica follows the
/// validators' decided blocks and never orders entries itself, so every submission is
/// refused with the validators to send it to instead.
#[derive(Debug, Clone)]
pub struct ReplicaSequencer {
    validators: Vec<String>,
}

impl ReplicaSequencer {
    /// `validators`: the API base URLs this replica follows (named in every refusal).
    pub fn new(validators: Vec<String>) -> Self {
        ReplicaSequencer { validators }
    }

    fn error(&self) -> SequencerError {
        SequencerError::ReadReplica { validators: self.validators.join(", ") }
    }
}

impl Sequencer for ReplicaSequencer {
    fn submit(&self, _candidates: Vec<Candidate>) -> SubmitFuture {
        let e = self.error();
        Box::pin(async move { Err(e) })
    }

    fn refuses_writes(&self) -> Option<SequencerError> {
        Some(self.error())
    }
}

enum Job {
    Submit {
        candidates: Vec<Candidate>,
        reply: oneshot::Sender<Result<Vec<Outcome>, SequencerError>>,
        /// Queue budget held until the committer has taken the job.
        permit: tokio::sync::OwnedSemaphorePermit,
    },
    /// Queued behind every accepted submission, so those commit before the thread ends.
    Stop,
}

/// Stops the committer thread after it has committed everything queued before the stop.
#[derive(Debug)]
pub struct CommitterHandle {
    tx: mpsc::UnboundedSender<Job>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl CommitterHandle {
    pub async fn shutdown(mut self) {
        let _ = self.tx.send(Job::Stop);
        if let Some(t) = self.thread.take() {
            let _ = tokio::task::spawn_blocking(move || t.join()).await;
        }
    }
}

/// Single-node group-commit sequencer. The queue is bounded by the bytes of the entries
/// waiting in it, so memory stays bounded however large each request is.
#[derive(Debug, Clone)]
pub struct LocalSequencer {
    tx: mpsc::UnboundedSender<Job>,
    budget: Arc<tokio::sync::Semaphore>,
    capacity_bytes: usize,
}

impl LocalSequencer {
    /// Starts the committer thread. `max_batch` bounds entries per commit (a submission is
    /// never split, so a batch may exceed it by one submission); `capacity_bytes` bounds
    /// the entry bytes waiting (a full queue refuses with a retry hint).
    pub fn start(
        ledger: Arc<Ledger>,
        clock: Arc<dyn Clock>,
        metrics: Arc<Metrics>,
        max_batch: usize,
        capacity_bytes: usize,
    ) -> std::io::Result<(Self, CommitterHandle)> {
        let (tx, rx) = mpsc::unbounded_channel::<Job>();
        let capacity_bytes = capacity_bytes.clamp(1, tokio::sync::Semaphore::MAX_PERMITS);
        let thread = std::thread::Builder::new()
            .name("dojang-committer".into())
            .spawn(move || committer(rx, ledger, clock, metrics, max_batch.max(1)))?;
        let budget = Arc::new(tokio::sync::Semaphore::new(capacity_bytes));
        Ok((LocalSequencer { tx: tx.clone(), budget, capacity_bytes }, CommitterHandle { tx, thread: Some(thread) }))
    }
}

impl Sequencer for LocalSequencer {
    fn submit(&self, candidates: Vec<Candidate>) -> SubmitFuture {
        let (reply, rx) = oneshot::channel();
        let bytes: usize = candidates.iter().map(|c| c.encoded.len()).sum();
        // A single submission larger than the whole budget could never be admitted.
        let need = u32::try_from(bytes.clamp(1, self.capacity_bytes)).unwrap_or(u32::MAX);
        let sent = match self.budget.clone().try_acquire_many_owned(need) {
            Ok(permit) => self.tx.send(Job::Submit { candidates, reply, permit }).map_err(|_| SequencerError::Stopped),
            Err(tokio::sync::TryAcquireError::NoPermits) => Err(SequencerError::Full {
                queued_bytes: self.capacity_bytes.saturating_sub(self.budget.available_permits()),
                capacity_bytes: self.capacity_bytes,
                retry_after_secs: 1,
            }),
            Err(tokio::sync::TryAcquireError::Closed) => Err(SequencerError::Stopped),
        };
        Box::pin(async move {
            sent?;
            rx.await.unwrap_or(Err(SequencerError::Stopped))
        })
    }
}

/// The committer loop: block for the first job, then take whatever else is queued, up to
/// `max_batch` entries, and commit it all with one synced write.
fn committer(mut rx: mpsc::UnboundedReceiver<Job>, ledger: Arc<Ledger>, clock: Arc<dyn Clock>, metrics: Arc<Metrics>, max_batch: usize) {
    let mut stopping = false;
    while !stopping {
        let Some(first) = rx.blocking_recv() else { break };
        let mut jobs = Vec::new();
        let mut n = 0usize;
        let mut next = Some(first);
        while let Some(job) = next.take() {
            match job {
                Job::Stop => {
                    stopping = true;
                    break;
                }
                Job::Submit { candidates, reply, permit } => {
                    n += candidates.len();
                    jobs.push((candidates, reply));
                    drop(permit);
                }
            }
            if n < max_batch {
                next = rx.try_recv().ok();
            }
        }
        if jobs.is_empty() {
            continue;
        }
        let sizes: Vec<usize> = jobs.iter().map(|j| j.0.len()).collect();
        let mut all = Vec::with_capacity(n);
        let mut replies = Vec::with_capacity(jobs.len());
        for (candidates, reply) in jobs {
            all.extend(candidates);
            replies.push(reply);
        }
        let started = std::time::Instant::now();
        match ledger.apply(all, clock.now_ms()) {
            Ok(outcomes) => {
                metrics.record_batch(&outcomes, started.elapsed());
                let mut it = outcomes.into_iter();
                for (reply, k) in replies.into_iter().zip(sizes) {
                    let _ = reply.send(Ok(it.by_ref().take(k).collect()));
                }
            }
            Err(e) => {
                // Nothing of this batch was committed; tell every submitter. A storage
                // failure is not retried blindly: the next batch tries again from the
                // unchanged in-memory state, which still matches the store.
                tracing::error!(error = %e, entries = n, "batch commit failed");
                for reply in replies {
                    let _ = reply.send(Err(SequencerError::Commit(e.to_string())));
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}
