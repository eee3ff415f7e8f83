#!/usr/bin/env bash
# Runs a 4-validator devnet as four separate dojangd processes on 127.0.0.1 (for
# multi-process experiments); `dojang devnet` does the same in one process with demo data.
# Usage: scripts/devnet.sh [dir] [--replica]   (Ctrl-C stops them all)
# Without a dir it runs the checked-in devnet: genesis/devnet.json with the public keys
# and configs in genesis/devnet/ (data in genesis/devnet/data-N, ignored by git). With a
# dir that has no genesis.json yet, it makes a fresh chain there first.
# --replica also starts a read replica on :7304 that follows the four over HTTP
# (specs/consensus.md §10).
set -euo pipefail
cd "$(dirname "$0")/.."
DIR="${1:-genesis/devnet}"
REPLICA="${2:-}"
if [ "$DIR" = "--replica" ]; then DIR=genesis/devnet; REPLICA=--replica; fi
export RUST_LOG="${RUST_LOG:-warn,arc_malachitebft_network=off,arc_malachitebft_discovery=off}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}"
cargo build -q --bins
BIN="$CARGO_TARGET_DIR/debug"
GENESIS=genesis.json
[ "$DIR" = genesis/devnet ] && GENESIS=../devnet.json
if [ ! -f "$DIR/$GENESIS" ]; then
  "$BIN/dojang" genesis init --validators 4 --out "$DIR" --base-port 7300
fi
pids=()
trap 'kill -TERM "${pids[@]}" 2>/dev/null; wait' INT TERM EXIT
for i in 0 1 2 3; do
  "$BIN/dojangd" --config "$DIR/node-$i.toml" &
  pids+=($!)
done
echo "4 validators starting: http://127.0.0.1:7300 .. http://127.0.0.1:7303 (Ctrl-C stops them)"
if [ "$REPLICA" = "--replica" ]; then
  [ -f "$DIR/replica.key" ] || "$BIN/dojang" key new --out "$DIR/replica.key" >/dev/null
  printf '%s\n' 'data_dir = "data-replica"' "genesis = \"$GENESIS\"" 'validator_key = "replica.key"' \
    'validator_id = "replica"' 'listen = "127.0.0.1:7304"' '[replica]' \
    'follow = ["http://127.0.0.1:7300", "http://127.0.0.1:7301", "http://127.0.0.1:7302", "http://127.0.0.1:7303"]' \
    > "$DIR/replica.toml"
  "$BIN/dojangd" --config "$DIR/replica.toml" &
  pids+=($!)
  echo "read replica starting: http://127.0.0.1:7304 (follows the validators, refuses writes)"
fi
wait
