//! The genesis files checked into `genesis/`: they parse, and the devnet's public keys and
//! node configs agree with its genesis, so `scripts/devnet.sh` can run it as it stands.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use std::path::PathBuf;

use dojang_core::did_key::DidKey;
use dojang_core::genesis::Genesis;
use dojang_node::config::NodeConfig;
use dojang_node::keyfile::KeyFile;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

#[test]
fn devnet_genesis_keys_and_configs_agree() {
    let path = repo().join("genesis/devnet.json");
    let genesis = Genesis::from_json(&std::fs::read(&path).unwrap()).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(genesis.validators.len(), 4);
    for (i, v) in genesis.validators.iter().enumerate() {
        let cfg = NodeConfig::from_toml_file(&repo().join(format!("genesis/devnet/node-{i}.toml"))).unwrap();
        cfg.check().unwrap();
        assert_eq!(cfg.validator_id, v.id);
        assert!(cfg.listen.ip().is_loopback(), "{} listens on {}", v.id, cfg.listen);
        assert_eq!(std::fs::canonicalize(&cfg.genesis).unwrap(), std::fs::canonicalize(&path).unwrap());
        assert_eq!(KeyFile::load(&cfg.validator_key).unwrap().0.did, v.consensus_key, "consensus key of {}", v.id);
        let p2p = KeyFile::load(cfg.p2p_key.as_ref().expect("p2p_key")).unwrap().1;
        assert_eq!(DidKey::from_verifying_key(&p2p.verifying_key()).did(), v.p2p_key, "p2p key of {}", v.id);
        assert!(v.p2p_address.starts_with("127.0.0.1:"), "{} p2p address {}", v.id, v.p2p_address);
        let writer = KeyFile::load(&repo().join(format!("genesis/devnet/writer-{i}.key"))).unwrap().1;
        assert_eq!(v.writer_keys, vec![DidKey::from_verifying_key(&writer.verifying_key()).key_id()], "writer key of {}", v.id);
    }
}
