#!/usr/bin/env bash
# Benchmarks: the bridge (direct pipe vs berth vs supergateway), sandbox cold
# start / idle memory per backend, and pool scaling (1 vs N instances; cold vs
# warm first call), each against a baseline in the same run.
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$REPO/target}
# shellcheck source=scripts/test-peers.sh
source "$REPO/scripts/test-peers.sh"
cargo build --release --locked -p berth-runtime -p berth-testserver
rustup target add wasm32-wasip2 >/dev/null
cargo build --locked -p berth-wasi-echo --target wasm32-wasip2 --profile wasm
export BERTH_WASI_SERVER="$CARGO_TARGET_DIR/wasm32-wasip2/wasm/berth-wasi-echo.wasm"
export BERTH_BIN="$CARGO_TARGET_DIR/release/berth"
export BERTH_TESTSERVER="$CARGO_TARGET_DIR/release/berth-testserver"
export BERTH_SUPERGATEWAY
cargo bench --locked -p berth-runtime --bench bridge
cargo bench --locked -p berth-runtime --bench cold_start
cargo bench --locked -p berth-runtime --bench scaling
