//! Node configuration: a TOML file, overridable by command-line flags (`specs/api.md` §1
//! documents the keys); relative paths resolve against the file's folder. Everything is validated at start-up, so a misconfigured node
//! fails with one clear line instead of misbehaving later.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// Where RocksDB keeps the ledger.
    pub data_dir: PathBuf,
    /// The genesis file.
    pub genesis: PathBuf,
    /// This validator's key file (`dojang key new`). On a read replica: the replica's own
    /// node key (it signs auth tokens; it is never a checkpoint signature).
    pub validator_key: PathBuf,
    /// This validator's id in the genesis file. On a read replica: the replica's own name,
    /// which must not be a genesis validator id.
    pub validator_id: String,
    /// HTTP listen address; loopback by default.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Most entries per group commit.
    #[serde(default = "default_max_batch")]
    pub max_batch: usize,
    /// Most entry bytes waiting for the sequencer; more are refused with a retry hint.
    #[serde(default = "default_queue")]
    pub queue_bytes: usize,
    /// Largest HTTP request body, in bytes.
    #[serde(default = "default_max_request")]
    pub max_request_bytes: usize,
    /// Most open HTTP connections; more are closed as they arrive (`specs/api.md` §1.3).
    #[serde(default = "default_http_max_connections")]
    pub http_max_connections: usize,
    /// How long a client may take to send its request headers (and a TLS handshake),
    /// milliseconds; slower connections are closed.
    #[serde(default = "default_http_header_timeout_ms")]
    pub http_header_timeout_ms: u64,
    /// `rocksdb` (default) or `memory` (tests only: nothing survives a restart).
    #[serde(default)]
    pub storage: StorageKind,
    /// HTTPS: serve TLS with this certificate chain and key (PEM files) instead of plain
    /// HTTP (`specs/api.md` §1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsConfig>,
    /// The agency's issuer key and operator token for `/credentials/issue`
    /// (`specs/credentials.md` §8.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials: Option<crate::credentials::CredentialsConfig>,
    /// This validator's libp2p key file (`dojang key new`); required when the genesis has
    /// several validators. Its did:key must be the validator's `p2p_key` in genesis.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p2p_key: Option<PathBuf>,
    /// Consensus p2p listen address (host:port); default: this validator's `p2p_address`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p2p_listen: Option<String>,
    /// Overrides of other validators' p2p addresses, by validator id (host:port). The
    /// PeerId always comes from genesis.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub peer_addresses: std::collections::BTreeMap<String, String>,
    /// Consensus propose timeout (round 0), milliseconds.
    #[serde(default = "default_propose_ms")]
    pub timeout_propose_ms: u64,
    /// Consensus prevote and precommit timeouts (round 0), milliseconds.
    #[serde(default = "default_vote_ms")]
    pub timeout_vote_ms: u64,
    /// How long a proposer with an empty mempool waits for entries before proposing an
    /// empty block, milliseconds.
    #[serde(default = "default_block_wait_ms")]
    pub block_wait_ms: u64,
    /// Test-only misbehaviour (`specs/consensus.md` §8): `forge-entry` proposes blocks with
    /// a forged entry, `rogue-p2p-key` runs with a p2p key that genesis does not list, `censor`
    /// proposes only empty blocks (entries submitted to it must still commit). Never
    /// set outside tests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_misbehaviour: Option<String>,
    /// `[replica]`: run as a non-voting read replica that follows these validators over
    /// HTTP instead of taking part in consensus (`specs/consensus.md` §10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replica: Option<ReplicaConfig>,
}

/// `[replica]`: where a read replica fetches decided blocks, and how often it asks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplicaConfig {
    /// API base URLs of validators (or other replicas), tried in turn: a source that is
    /// down, behind or serves a block that does not verify is passed over for the next.
    pub follow: Vec<String>,
    /// How long to wait before asking again once no source has the next block, ms.
    #[serde(default = "default_poll_ms")]
    pub poll_ms: u64,
}

fn default_poll_ms() -> u64 {
    200
}

fn default_http_max_connections() -> usize {
    1024
}
fn default_http_header_timeout_ms() -> u64 {
    10_000
}
fn default_propose_ms() -> u64 {
    3000
}
fn default_vote_ms() -> u64 {
    1000
}
fn default_block_wait_ms() -> u64 {
    50
}

impl Default for NodeConfig {
    /// Defaults for every optional key; the four required paths and id are left empty.
    fn default() -> Self {
        NodeConfig {
            data_dir: PathBuf::new(),
            genesis: PathBuf::new(),
            validator_key: PathBuf::new(),
            validator_id: String::new(),
            listen: default_listen(),
            max_batch: default_max_batch(),
            queue_bytes: default_queue(),
            max_request_bytes: default_max_request(),
            http_max_connections: default_http_max_connections(),
            http_header_timeout_ms: default_http_header_timeout_ms(),
            storage: StorageKind::default(),
            p2p_key: None,
            p2p_listen: None,
            peer_addresses: Default::default(),
            timeout_propose_ms: default_propose_ms(),
            timeout_vote_ms: default_vote_ms(),
            block_wait_ms: default_block_wait_ms(),
            test_misbehaviour: None,
            replica: None,
            tls: None,
            credentials: None,
        }
    }
}

/// `[tls]`: PEM certificate chain and private key (PKCS#8, PKCS#1 or SEC1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StorageKind {
    #[default]
    Rocksdb,
    Memory,
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 7300))
}
fn default_max_batch() -> usize {
    8192
}
fn default_queue() -> usize {
    256 << 20
}
fn default_max_request() -> usize {
    16 << 20
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("config file {path} is invalid: {reason}")]
    Invalid { path: String, reason: String },
    #[error("config value {key} = {value} is invalid: {reason}")]
    Value { key: &'static str, value: String, reason: &'static str },
}

impl NodeConfig {
    pub fn from_toml_file(path: &std::path::Path) -> Result<Self, ConfigError> {
        let p = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: p.clone(), source })?;
        let mut cfg: NodeConfig =
            toml::from_str(&text).map_err(|e| ConfigError::Invalid { path: p, reason: e.to_string().trim().replace('\n', " ") })?;
        // Relative paths are relative to the config file, not to wherever dojangd runs.
        if let Some(base) = path.parent() {
            let mut paths = vec![&mut cfg.data_dir, &mut cfg.genesis, &mut cfg.validator_key];
            if let Some(t) = cfg.tls.as_mut() {
                paths.extend([&mut t.cert, &mut t.key]);
            }
            if let Some(c) = cfg.credentials.as_mut() {
                paths.extend([&mut c.issuer_key, &mut c.api_token_file]);
            }
            if let Some(k) = cfg.p2p_key.as_mut() {
                paths.push(k);
            }
            for f in paths {
                if f.is_relative() {
                    *f = base.join(&*f);
                }
            }
        }
        cfg.check()?;
        Ok(cfg)
    }

    /// Range checks that do not need the filesystem.
    pub fn check(&self) -> Result<(), ConfigError> {
        if !(1..=100_000).contains(&self.max_batch) {
            return Err(ConfigError::Value { key: "max_batch", value: self.max_batch.to_string(), reason: "must be 1..=100000" });
        }
        if !((64 << 10)..=(4 << 30)).contains(&self.queue_bytes) {
            return Err(ConfigError::Value { key: "queue_bytes", value: self.queue_bytes.to_string(), reason: "must be 64 KiB..=4 GiB" });
        }
        if !(1024..=(256 << 20)).contains(&self.max_request_bytes) {
            return Err(ConfigError::Value {
                key: "max_request_bytes",
                value: self.max_request_bytes.to_string(),
                reason: "must be 1 KiB..=256 MiB",
            });
        }
        if !(1..=65_536).contains(&self.http_max_connections) {
            return Err(ConfigError::Value {
                key: "http_max_connections",
                value: self.http_max_connections.to_string(),
                reason: "must be 1..=65536",
            });
        }
        if !(100..=600_000).contains(&self.http_header_timeout_ms) {
            return Err(ConfigError::Value {
                key: "http_header_timeout_ms",
                value: self.http_header_timeout_ms.to_string(),
                reason: "must be 100..=600000",
            });
        }
        if !(50..=600_000).contains(&self.timeout_propose_ms) || !(20..=600_000).contains(&self.timeout_vote_ms) {
            return Err(ConfigError::Value {
                key: "timeout_propose_ms",
                value: format!("{}/{}", self.timeout_propose_ms, self.timeout_vote_ms),
                reason: "timeouts must be 50..=600000 ms (propose) and 20..=600000 ms (votes)",
            });
        }
        if self.block_wait_ms * 3 > self.timeout_propose_ms {
            return Err(ConfigError::Value {
                key: "block_wait_ms",
                value: self.block_wait_ms.to_string(),
                reason: "must be at most a third of timeout_propose_ms",
            });
        }
        if let Some(m) = &self.test_misbehaviour
            && !["forge-entry", "rogue-p2p-key", "censor"].contains(&m.as_str())
        {
            return Err(ConfigError::Value {
                key: "test_misbehaviour",
                value: m.clone(),
                reason: "must be forge-entry, rogue-p2p-key or censor",
            });
        }
        if let Some(r) = &self.replica {
            if r.follow.is_empty() {
                return Err(ConfigError::Value {
                    key: "replica.follow",
                    value: "[]".into(),
                    reason: "must name at least one validator API URL",
                });
            }
            if let Some(u) = r.follow.iter().find(|u| !(u.starts_with("http://") || u.starts_with("https://"))) {
                return Err(ConfigError::Value {
                    key: "replica.follow",
                    value: u.clone(),
                    reason: "every URL must start with http:// or https://",
                });
            }
            if !(10..=60_000).contains(&r.poll_ms) {
                return Err(ConfigError::Value { key: "replica.poll_ms", value: r.poll_ms.to_string(), reason: "must be 10..=60000" });
            }
        }
        Ok(())
    }

    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn relative_paths_follow_the_config_file_and_values_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("node.toml");
        std::fs::write(&p, "data_dir = \"d\"\ngenesis = \"/abs/g.json\"\nvalidator_key = \"k.key\"\nvalidator_id = \"v\"\n").unwrap();
        let cfg = NodeConfig::from_toml_file(&p).unwrap();
        assert_eq!(cfg.data_dir, dir.path().join("d"));
        assert_eq!(cfg.genesis, PathBuf::from("/abs/g.json"));
        assert_eq!(cfg.listen, default_listen());
        std::fs::write(&p, "data_dir = \"d\"\ngenesis = \"g\"\nvalidator_key = \"k\"\nvalidator_id = \"v\"\nmax_batch = 0\n").unwrap();
        assert!(matches!(NodeConfig::from_toml_file(&p), Err(ConfigError::Value { key: "max_batch", .. })));
        std::fs::write(&p, "data_dir = \"d\"\nbogus = 1\n").unwrap();
        assert!(matches!(NodeConfig::from_toml_file(&p), Err(ConfigError::Invalid { .. })));
        assert!(matches!(NodeConfig::from_toml_file(&dir.path().join("missing.toml")), Err(ConfigError::Read { .. })));
    }

    #[test]
    fn replica_section_is_parsed_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("replica.toml");
        let head = "data_dir = \"d\"\ngenesis = \"g\"\nvalidator_key = \"k\"\nvalidator_id = \"r1\"\n";
        std::fs::write(&p, format!("{head}[replica]\nfollow = [\"http://127.0.0.1:7300\", \"http://127.0.0.1:7301\"]\n")).unwrap();
        let cfg = NodeConfig::from_toml_file(&p).unwrap();
        let r = cfg.replica.clone().unwrap();
        assert_eq!(r.follow.len(), 2);
        assert_eq!(r.poll_ms, 200);
        // A config written by the CLI (`dojang devnet --replica`) reads back the same.
        let back: NodeConfig = toml::from_str(&cfg.to_toml()).unwrap();
        assert_eq!(back.replica, cfg.replica);
        std::fs::write(&p, format!("{head}[replica]\nfollow = []\n")).unwrap();
        assert!(matches!(NodeConfig::from_toml_file(&p), Err(ConfigError::Value { key: "replica.follow", .. })));
        std::fs::write(&p, format!("{head}[replica]\nfollow = [\"127.0.0.1:7300\"]\n")).unwrap();
        assert!(matches!(NodeConfig::from_toml_file(&p), Err(ConfigError::Value { key: "replica.follow", .. })));
        std::fs::write(&p, format!("{head}[replica]\nfollow = [\"http://a\"]\npoll_ms = 0\n")).unwrap();
        assert!(matches!(NodeConfig::from_toml_file(&p), Err(ConfigError::Value { key: "replica.poll_ms", .. })));
        std::fs::write(&p, format!("{head}[replica]\nfollow = [\"http://a\"]\nbogus = 1\n")).unwrap();
        assert!(matches!(NodeConfig::from_toml_file(&p), Err(ConfigError::Invalid { .. })));
    }
}
