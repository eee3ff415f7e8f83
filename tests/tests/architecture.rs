//! Architecture invariants from ARCHITECTURE.md, checked mechanically: each heavy
//! dependency has exactly one owner module, and the core stays free of IO crates.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            if p.file_name().is_some_and(|n| n != "target") {
                rust_files(&p, out);
            }
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Files (relative to the repo) that mention `crate_name::` or `use crate_name`.
fn users(crate_name: &str) -> Vec<String> {
    let mut files = Vec::new();
    for d in ["node", "cli", "tests"] {
        rust_files(&root().join(d), &mut files);
    }
    let needles = [format!("{crate_name}::"), format!("use {crate_name}")];
    let mut out: Vec<String> = files
        .into_iter()
        .filter(|f| {
            let text = std::fs::read_to_string(f).unwrap();
            text.lines().filter(|l| !l.trim_start().starts_with("//")).any(|l| needles.iter().any(|n| l.contains(n.as_str())))
        })
        .map(|f| f.strip_prefix(root()).unwrap().display().to_string())
        .filter(|f| !f.starts_with("tests/tests/architecture.rs"))
        .collect();
    out.sort();
    out
}

#[test]
fn only_the_storage_module_imports_rocksdb() {
    assert_eq!(users("rocksdb"), vec!["node/src/storage/rocks.rs"]);
}

#[test]
fn only_the_api_module_imports_axum() {
    let users = users("axum");
    assert!(!users.is_empty(), "the api module no longer uses axum?");
    for f in users {
        assert!(f.starts_with("node/src/api/"), "{f} imports axum outside node/src/api/");
    }
}

#[test]
fn only_the_consensus_module_imports_malachite_and_libp2p() {
    for krate in ["arc_malachitebft_app_channel", "arc_malachitebft_signing", "arc_malachitebft_sync", "libp2p_identity", "libp2p"] {
        for f in users(krate) {
            assert!(f.starts_with("node/src/consensus/"), "{f} imports {krate} outside node/src/consensus/");
        }
    }
    assert!(!users("arc_malachitebft_app_channel").is_empty(), "the consensus module no longer uses Malachite?");
}

#[test]
fn the_core_has_no_io_dependencies() {
    let manifest = std::fs::read_to_string(root().join("node/core/Cargo.toml")).unwrap();
    for banned in ["tokio", "rocksdb", "libp2p", "axum", "hyper", "reqwest", "ureq"] {
        assert!(!manifest.lines().any(|l| l.trim_start().starts_with(banned)), "node/core depends on {banned}");
    }
    let mut files = Vec::new();
    rust_files(&root().join("node/core"), &mut files);
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        for banned in ["std::fs", "std::net", "SystemTime::now", "OsRng", "std::env::var"] {
            let hits = text.lines().filter(|l| l.contains(banned) && !l.trim_start().starts_with("//")).count();
            // Test support may read vectors from disk; production code may not.
            let allowed = f.ends_with("testing.rs") || text.contains("#[cfg(test)]") && banned == "std::fs";
            assert!(hits == 0 || allowed, "{} uses {banned}", f.display());
        }
    }
}

#[test]
fn every_source_file_opens_with_a_module_comment() {
    let mut files = Vec::new();
    for d in ["node", "cli", "tests"] {
        rust_files(&root().join(d), &mut files);
    }
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        assert!(text.starts_with("//!"), "{} does not open with a //! comment", f.display());
    }
}
