#!/usr/bin/env bash
# berth's whole test suite, from a fresh clone: installs the pinned test peers
# (idempotently), checks formatting and lints, builds, then runs the Rust unit
# and integration tests and the end-to-end suite against real MCP clients and
# servers. CI runs exactly this (.ci/run).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$REPO/target}
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}
# A fresh clone builds once: incremental state would only cost disk (~1.6 GB).
if [[ -n "${CI:-}" ]]; then export CARGO_INCREMENTAL=${CARGO_INCREMENTAL:-0}; fi

step() { printf '\n==> %s\n' "$*"; }

step "machine"
df -h "$CARGO_TARGET_DIR" 2>/dev/null || df -h "$REPO"

step "test peers"
# shellcheck source=scripts/test-peers.sh
source "$REPO/scripts/test-peers.sh"

step "docker engine"
# shellcheck source=scripts/docker-engine.sh
source "$REPO/scripts/docker-engine.sh"

step "postgresql"
# shellcheck source=scripts/postgres.sh
source "$REPO/scripts/postgres.sh"

step "format and lints"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings

step "build"
cargo build --workspace --locked
# The first-party WASI server (connectors/wasi-echo), for the wasi backend's tests.
rustup target add wasm32-wasip2 >/dev/null
cargo build --locked -p berth-wasi-echo --target wasm32-wasip2 --profile wasm

step "rust tests"
cargo test --workspace --locked

step "end-to-end tests"
export BERTH_BIN="$CARGO_TARGET_DIR/debug/berth"
export BERTH_TESTSERVER="$CARGO_TARGET_DIR/debug/berth-testserver"
export BERTH_WASI_SERVER="$CARGO_TARGET_DIR/wasm32-wasip2/wasm/berth-wasi-echo.wasm"
export BERTH_PEERS
"$BERTH_PY" -m pytest "$REPO/tests" -q -p no:cacheprovider "$@"
