#!/usr/bin/env bash
# Runs every test of the workspace — the one test command (README, .ci/run).
# Builds the binaries first: the multi-process tests in tests/ drive the real dojangd.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${DOJANG_VECTORS:=$(cd .. && pwd)/shared/vectors}"
export DOJANG_VECTORS
if [ ! -d "$DOJANG_VECTORS" ]; then
  echo "error: public spec vectors not found at $DOJANG_VECTORS (set DOJANG_VECTORS); the conformance tests need them" >&2
  exit 1
fi
locked=()
[ -f Cargo.lock ] && locked=(--locked)
cargo fmt --all --check
cargo clippy "${locked[@]}" --workspace --all-targets -- -D warnings
cargo build "${locked[@]}" --workspace --bins
cargo test "${locked[@]}" --workspace
