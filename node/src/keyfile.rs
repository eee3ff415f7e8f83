//! Key files: an Ed25519 secret key with its did:key, as written by `dojang key new`
//! (`specs/genesis.md` §5). The file is JSON so that operators can read which key it is;
//! it is created with mode 0600.

use std::path::Path;

use dojang_core::did_key::DidKey;
use ed25519_dalek::SigningKey;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyFile {
    /// Always "ed25519".
    #[serde(rename = "type")]
    pub key_type: String,
    pub did: String,
    pub key_id: String,
    /// The 32-byte secret seed, hex.
    pub secret_key: String,
}

#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error("cannot read key file {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("cannot write key file {path}: {source}")]
    Write { path: String, source: std::io::Error },
    #[error("key file {path} is not valid: {reason}")]
    Invalid { path: String, reason: String },
}

impl KeyFile {
    pub fn from_signing_key(key: &SigningKey) -> Self {
        let d = DidKey::from_verifying_key(&key.verifying_key());
        KeyFile { key_type: "ed25519".into(), did: d.did(), key_id: d.key_id(), secret_key: hex::encode(key.to_bytes()) }
    }

    /// Loads and checks that the secret key matches the stated DID.
    pub fn load(path: &Path) -> Result<(KeyFile, SigningKey), KeyFileError> {
        let p = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| KeyFileError::Read { path: p.clone(), source })?;
        let kf: KeyFile = serde_json::from_str(&text).map_err(|e| KeyFileError::Invalid { path: p.clone(), reason: e.to_string() })?;
        if kf.key_type != "ed25519" {
            return Err(KeyFileError::Invalid { path: p, reason: format!("unsupported key type {:?}", kf.key_type) });
        }
        let mut seed = [0u8; 32];
        if kf.secret_key.len() != 64 || !kf.secret_key.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
            return Err(KeyFileError::Invalid { path: p, reason: "secret_key is not 64 lowercase hex characters".into() });
        }
        hex::decode_to_slice(&kf.secret_key, &mut seed)
            .map_err(|_| KeyFileError::Invalid { path: p.clone(), reason: "secret_key is not 64 lowercase hex characters".into() })?;
        let key = SigningKey::from_bytes(&seed);
        if KeyFile::from_signing_key(&key) != kf {
            return Err(KeyFileError::Invalid { path: p, reason: "did or key_id does not match the secret key".into() });
        }
        Ok((kf, key))
    }

    /// Writes the file with owner-only permissions, refusing to overwrite.
    pub fn write_new(&self, path: &Path) -> Result<(), KeyFileError> {
        use std::io::Write as _;
        let p = path.display().to_string();
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            opts.mode(0o600);
        }
        let mut f = opts.open(path).map_err(|source| KeyFileError::Write { path: p.clone(), source })?;
        let text = serde_json::to_string_pretty(self).unwrap_or_default();
        f.write_all(text.as_bytes()).and_then(|()| f.write_all(b"\n")).map_err(|source| KeyFileError::Write { path: p, source })
    }
}
