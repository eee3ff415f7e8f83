//! Counters for `/metrics`, rendered in the Prometheus text exposition format by hand:
//! a dozen atomics do not justify a metrics framework dependency.

use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use crate::sequencer::Outcome;

#[derive(Debug, Default)]
pub struct Metrics {
    pub entries_committed: AtomicU64,
    pub batches_committed: AtomicU64,
    pub commit_micros_total: AtomicU64,
    pub http_requests: AtomicU64,
    pub http_client_errors: AtomicU64,
    pub http_server_errors: AtomicU64,
    pub tree_size: AtomicU64,
    rejected: Mutex<std::collections::BTreeMap<&'static str, u64>>,
}

impl Metrics {
    pub fn record_batch(&self, outcomes: &[Outcome], took: Duration) {
        let mut committed = 0u64;
        for o in outcomes {
            match o {
                Ok(r) => {
                    committed += 1;
                    self.tree_size.fetch_max(r.tree_size, Relaxed);
                }
                Err(e) => self.reject(e.slug()),
            }
        }
        self.entries_committed.fetch_add(committed, Relaxed);
        self.batches_committed.fetch_add(1, Relaxed);
        self.commit_micros_total.fetch_add(took.as_micros() as u64, Relaxed);
    }

    pub fn reject(&self, reason: &'static str) {
        let mut m = self.rejected.lock().unwrap_or_else(|p| p.into_inner());
        *m.entry(reason).or_default() += 1;
    }

    pub fn http_status(&self, status: u16) {
        self.http_requests.fetch_add(1, Relaxed);
        if (400..500).contains(&status) {
            self.http_client_errors.fetch_add(1, Relaxed);
        } else if status >= 500 {
            self.http_server_errors.fetch_add(1, Relaxed);
        }
    }

    pub fn render(&self) -> String {
        let mut s = String::new();
        let mut counter = |name: &str, help: &str, kind: &str, v: u64| {
            let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}");
        };
        counter("dojang_entries_committed_total", "Entries durably committed.", "counter", self.entries_committed.load(Relaxed));
        counter(
            "dojang_batches_committed_total",
            "Group-committed batches (one WAL sync each).",
            "counter",
            self.batches_committed.load(Relaxed),
        );
        counter("dojang_http_requests_total", "HTTP requests answered.", "counter", self.http_requests.load(Relaxed));
        counter("dojang_http_client_errors_total", "HTTP 4xx answers.", "counter", self.http_client_errors.load(Relaxed));
        counter("dojang_http_server_errors_total", "HTTP 5xx answers.", "counter", self.http_server_errors.load(Relaxed));
        counter("dojang_tree_size", "Leaves in the latest checkpoint.", "gauge", self.tree_size.load(Relaxed));
        let _ = writeln!(
            s,
            "# HELP dojang_commit_seconds_total Time spent applying and persisting batches.\n# TYPE dojang_commit_seconds_total counter\ndojang_commit_seconds_total {:.6}",
            self.commit_micros_total.load(Relaxed) as f64 / 1e6
        );
        let _ =
            writeln!(s, "# HELP dojang_entries_rejected_total Entries refused, by reason.\n# TYPE dojang_entries_rejected_total counter");
        for (reason, n) in self.rejected.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            let _ = writeln!(s, "dojang_entries_rejected_total{{reason=\"{reason}\"}} {n}");
        }
        s
    }
}
